"""TokenLayout: the named token groups of one sample, in expanded sequence coordinates.

Groups (the paper's regions): all, prefix, video, frame[t], cell[t,h,w], question (incl. options),
non_option_question, option[k], true_option, false_options, predicted_option (the option the model
chose), post, last, and, in the open-ended flow's inputs (prompt + the answer so far), response (the
answer's earlier tokens). Video tokens are one span per frame; the frames may follow each other (LLaVA)
or be separated by text (per-frame markers such as VideoLLaMA3's `Time 0.0s:` and the commas
between frames). A model may append tokens of its own to the video that belong to no frame (LLaVA-
OneVision's one `image_newline` after the last frame): the video's `tail`, which the knockouts count
in the video group (video -> question blocks it too) and in no frame. Built from tokenizer offsets
and the prompt's character spans, never from hand-counted offsets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from vlmflow.prompt import Prompt

Span = tuple[int, int]  # [start, end) token positions


@dataclass(frozen=True)
class TokenLayout:
    n_tokens: int  # length of the expanded sequence N
    frames: tuple[Span, ...]  # the video tokens of each frame, in time order (H*W each)
    grid: tuple[int, int, int]  # (T, H, W): frame-major, then row-major within a frame
    question: Span
    non_option_question: Span
    options: tuple[Span, ...]  # empty for an open-ended prompt
    true_option: int | None  # index into options (None: open-ended)
    predicted_option: int | None = None  # the option the unmodified model chose (failure cases)
    # What the knockouts treat as frame t when it reaches beyond the frame's video tokens (the
    # authors' VideoLLaMA3 ranges take in the time text and the commas); None: the video tokens.
    frame_blocks: tuple[Span, ...] | None = None
    # the character span, relative to the raw question text, of each token of non_option_question
    # (from the whole prompt's offsets: a token merged across the question's end reaches beyond it)
    question_chars: tuple[Span, ...] = ()
    # the open-ended flow's inputs end with generated answer tokens: the earlier ones the knockouts
    # call "response" (those just before the last token left open); None in a prompt alone
    response: Span | None = None
    # tokens the model appends to the video after the last frame, in no frame (OneVision's
    # image_newline); the knockouts' "video" holds them, the cells and "frame[t]" do not
    video_tail: Span | None = None

    def __post_init__(self):
        T, H, W = self.grid
        if len(self.frames) != T or any(b - a != H * W for a, b in self.frames):
            raise ValueError(f"frame spans {self.frames} do not hold {T} frames of {H}x{W} tokens")
        if any(self.frames[t][1] > self.frames[t + 1][0] for t in range(T - 1)):
            raise ValueError(f"frame spans {self.frames} overlap or are out of order")
        if self.frame_blocks is not None and (
            len(self.frame_blocks) != T
            or any(not (a <= f[0] and f[1] <= b) for (a, b), f in zip(self.frame_blocks, self.frames))
            or any(self.frame_blocks[t][1] > self.frame_blocks[t + 1][0] for t in range(T - 1))
        ):
            raise ValueError(f"frame blocks {self.frame_blocks} must hold frames {self.frames}, in order")
        if self.video_tail is not None and self.video_tail[0] != self.knockout_frames[-1][1]:
            raise ValueError(f"video tail {self.video_tail} must follow the last frame {self.frames[-1]}")

    @property
    def last(self) -> int:
        return self.n_tokens - 1

    @property
    def knockout_frames(self) -> tuple[Span, ...]:
        """The spans the knockouts treat as the frames (`frame_blocks`, else the video tokens)."""
        return self.frames if self.frame_blocks is None else self.frame_blocks

    @property
    def video_range(self) -> Span:
        """From the first video token (or frame block) to the last one, text between frames and the
        video's tail included."""
        end = self.knockout_frames[-1][1] if self.video_tail is None else self.video_tail[1]
        return self.knockout_frames[0][0], end

    def feature_indices(self) -> np.ndarray:
        """Positions of the adapter's video features in order: the frames' tokens, then the tail."""
        return _positions(list(self.frames) + ([self.video_tail] if self.video_tail else []))

    @property
    def contiguous(self) -> bool:
        """True when the frames follow each other with no text between them."""
        return all(self.frames[t][1] == self.frames[t + 1][0] for t in range(len(self.frames) - 1))

    def question_position(self, chars: Span) -> int | None:
        """The position of the last token covering characters [a, b) of the raw question text (e.g. a
        word of it), or None when no token of the question covers them."""
        a, b = chars
        hit = [k for k, (s, e) in enumerate(self.question_chars) if e > s and s < b and e > a]
        return self.non_option_question[0] + hit[-1] if hit else None

    def frame(self, t: int) -> Span:
        if not 0 <= t < len(self.frames):
            raise IndexError(f"frame {t} out of range 0..{len(self.frames) - 1}")
        return self.frames[t]

    def spans(self, group: str) -> list[Span]:
        """Token spans of a named group, e.g. "video", "frame[2]", "option[1]", "cell[0,1,2]"."""
        m = re.fullmatch(r"(\w+)(?:\[([\d,\s]+)\])?", group)
        if m is None:
            raise KeyError(f"bad group name {group!r}")
        name, arg = m.group(1), m.group(2)
        args = [int(a) for a in arg.split(",")] if arg else []
        if name == "all":
            return [(0, self.n_tokens)]
        if name == "prefix":
            return [(0, self.video_range[0])]
        if name == "video":
            return list(self.frames)
        if name == "frame":
            return [self.frame(args[0])]
        if name == "cell":
            t, h, w = args
            start = self.frame(t)[0] + h * self.grid[2] + w
            return [(start, start + 1)]
        if name in ("question", "non_option_question"):
            return [getattr(self, name)]
        if name == "option":
            return [self.options[args[0]]]
        if name in ("true_option", "false_options") and self.true_option is None:
            raise KeyError(f"{group!r}: an open-ended prompt has no options")
        if name == "true_option":
            return [self.options[self.true_option]]
        if name == "predicted_option":
            if self.predicted_option is None:
                raise KeyError("predicted_option: the sample's baseline answer is not an option letter")
            return [self.options[self.predicted_option]]
        if name == "false_options":
            return [o for k, o in enumerate(self.options) if k != self.true_option]
        if name == "response":
            if self.response is None:
                raise KeyError("response: only the open-ended flow's inputs (prompt + answer) have one")
            return [self.response]
        if name == "post":
            return [(self.question[1], self.last)]
        if name == "last":
            return [(self.last, self.n_tokens)]
        raise KeyError(f"unknown group {group!r}")

    def indices(self, group: str) -> np.ndarray:
        """Token positions of a named group, in increasing order."""
        return _positions(self.spans(group))

    def knockout_spans(self, group: str) -> list[Span]:
        """A group as the knockouts see it: in "video" and "frame[t]" each frame is its block, and
        "video" ends with the video's tail."""
        spans = self.spans(group)
        if group == "video" or group.startswith("frame["):
            block = dict(zip(self.frames, self.knockout_frames))
            spans = [block[s] for s in spans]
        if group == "video" and self.video_tail is not None:
            spans.append(self.video_tail)
        return spans

    def knockout_indices(self, group: str) -> np.ndarray:
        return _positions(self.knockout_spans(group))


def _positions(spans: list[Span]) -> np.ndarray:
    parts = [np.arange(a, b) for a, b in spans]
    return np.concatenate(parts) if parts else np.array([], int)


def char_span_to_tokens(offsets: list[tuple[int, int]], span: Span, what: str) -> Span:
    """Smallest token range [i, j) covering the characters [a, b) of the text."""
    a, b = span
    hit = [i for i, (s, e) in enumerate(offsets) if e > s and s < b and e > a]
    if not hit:
        raise ValueError(f"{what} span {span} is not covered by any token")
    return hit[0], hit[-1] + 1


def build_layout(
    prompt: Prompt,
    offsets: list[tuple[int, int]],
    placeholders: list[int],
    grid: tuple[int, int, int],
    true_option: int | None,
    frame_blocks: list[Span] | None = None,
    tail: int = 0,
) -> TokenLayout:
    """Layout in expanded coordinates. `placeholders` are the prompt-token positions the video
    replaces: one token that becomes all T*H*W video tokens and the `tail` tokens after them, or one
    token per frame that becomes that frame's H*W tokens (frames separated by text). `frame_blocks`:
    character spans of what the knockouts treat as each frame, when that is more than its video tokens."""
    T, H, W = grid
    if len(placeholders) not in (1, T):
        raise ValueError(f"{len(placeholders)} video placeholders; expected 1 or one per frame ({T})")
    if tail and len(placeholders) != 1:
        raise ValueError("a video tail follows one video placeholder, not one per frame")
    per = T * H * W + tail if len(placeholders) == 1 else H * W
    placeholders = sorted(placeholders)

    def expanded(i: int) -> int:  # prompt-token position -> expanded position
        return i + sum(per - 1 for p in placeholders if p < i)

    starts = [expanded(p) for p in placeholders]
    frames = (
        tuple((starts[0] + t * H * W, starts[0] + (t + 1) * H * W) for t in range(T))
        if len(starts) == 1
        else tuple((s, s + H * W) for s in starts)
    )

    def region(span: Span, what: str) -> Span:
        i, j = char_span_to_tokens(offsets, span, what)
        if any(i <= p < j for p in placeholders):
            raise ValueError(f"{what} contains the video; the prompt layout is not supported")
        return expanded(i), expanded(j - 1) + 1

    def block(span: Span, t: int) -> Span:
        i, j = char_span_to_tokens(offsets, span, f"frame block {t}")
        return expanded(i), expanded(j - 1) + (per if j - 1 in placeholders else 1)

    nq = char_span_to_tokens(offsets, prompt.non_option_question, "non-option question")
    a = prompt.non_option_question[0]
    return TokenLayout(
        n_tokens=expanded(len(offsets) - 1) + 1,
        frames=frames,
        grid=grid,
        question=region(prompt.question, "question"),
        non_option_question=region(prompt.non_option_question, "non-option question"),
        question_chars=tuple((s - a, e - a) for s, e in offsets[nq[0] : nq[1]]),
        options=tuple(region(o, f"option {k}") for k, o in enumerate(prompt.options)),
        true_option=true_option,
        frame_blocks=None if frame_blocks is None else tuple(block(b, t) for t, b in enumerate(frame_blocks)),
        video_tail=(frames[-1][1], frames[-1][1] + tail) if tail else None,
    )

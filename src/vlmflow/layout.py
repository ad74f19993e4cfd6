"""TokenLayout: the named token groups of one sample, in expanded sequence coordinates.

Groups (spec A.4): all, prefix, video, frame[t], cell[t,h,w], question (incl. options),
non_option_question, option[k], true_option, false_options, post, last. Built from tokenizer
offsets and the prompt's character spans, never from hand-counted offsets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from vlmflow.prompt import Prompt


@dataclass(frozen=True)
class TokenLayout:
    n_tokens: int  # length of the expanded sequence N
    video: tuple[int, int]  # [start, end) of the video tokens
    grid: tuple[int, int, int]  # (T, H, W) of the video tokens, frame-major then row-major
    question: tuple[int, int]
    non_option_question: tuple[int, int]
    options: tuple[tuple[int, int], ...]
    true_option: int  # index into options

    @property
    def last(self) -> int:
        return self.n_tokens - 1

    def frame(self, t: int) -> tuple[int, int]:
        T, H, W = self.grid
        if not 0 <= t < T:
            raise IndexError(f"frame {t} out of range 0..{T - 1}")
        start = self.video[0] + t * H * W
        return start, start + H * W

    def indices(self, group: str) -> np.ndarray:
        """Token positions of a named group, e.g. "video", "frame[2]", "option[1]", "cell[0,1,2]"."""
        m = re.fullmatch(r"(\w+)(?:\[([\d,\s]+)\])?", group)
        if m is None:
            raise KeyError(f"bad group name {group!r}")
        name, arg = m.group(1), m.group(2)
        args = [int(a) for a in arg.split(",")] if arg else []
        span = lambda a, b: np.arange(a, b)  # noqa: E731
        if name == "all":
            return span(0, self.n_tokens)
        if name == "prefix":
            return span(0, self.video[0])
        if name == "video":
            return span(*self.video)
        if name == "frame":
            return span(*self.frame(args[0]))
        if name == "cell":
            t, h, w = args
            T, H, W = self.grid
            return np.array([self.video[0] + t * H * W + h * W + w])
        if name == "question":
            return span(*self.question)
        if name == "non_option_question":
            return span(*self.non_option_question)
        if name == "option":
            return span(*self.options[args[0]])
        if name == "true_option":
            return span(*self.options[self.true_option])
        if name == "false_options":
            parts = [span(*o) for k, o in enumerate(self.options) if k != self.true_option]
            return np.concatenate(parts) if parts else np.array([], int)
        if name == "post":
            return span(self.question[1], self.n_tokens - 1)
        if name == "last":
            return np.array([self.last])
        raise KeyError(f"unknown group {group!r}")


def char_span_to_tokens(offsets: list[tuple[int, int]], span: tuple[int, int], what: str) -> tuple[int, int]:
    """Smallest token range [i, j) covering the characters [a, b) of the text."""
    a, b = span
    hit = [i for i, (s, e) in enumerate(offsets) if e > s and s < b and e > a]
    if not hit:
        raise ValueError(f"{what} span {span} is not covered by any token")
    return hit[0], hit[-1] + 1


def build_layout(
    prompt: Prompt,
    offsets: list[tuple[int, int]],
    placeholder_index: int,
    grid: tuple[int, int, int],
    true_option: int,
) -> TokenLayout:
    """Layout in expanded coordinates: the one placeholder token becomes T*H*W video tokens."""
    n_video = grid[0] * grid[1] * grid[2]
    shift = n_video - 1

    def expanded(span, what):
        i, j = char_span_to_tokens(offsets, span, what)
        if i <= placeholder_index:
            raise ValueError(f"{what} starts before the video; the prompt layout is not supported")
        return i + shift, j + shift

    return TokenLayout(
        n_tokens=len(offsets) + shift,
        video=(placeholder_index, placeholder_index + n_video),
        grid=grid,
        question=expanded(prompt.question, "question"),
        non_option_question=expanded(prompt.non_option_question, "non-option question"),
        options=tuple(expanded(o, f"option {k}") for k, o in enumerate(prompt.options)),
        true_option=true_option,
    )

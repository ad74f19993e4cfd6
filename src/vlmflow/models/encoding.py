"""Prompt encoding shared by the adapters: prompt text -> token ids, the expanded TokenLayout, the
option letters' ids, and the input embeddings with the video tokens at the placeholders."""

from __future__ import annotations

import torch

from vlmflow.layout import Span, TokenLayout, build_layout
from vlmflow.models.base import PreparedSample
from vlmflow.open_ended import OpenAnswer
from vlmflow.prompt import LETTERS, Prompt
from vlmflow.question import Question


def encode(
    tokenizer,
    prompt: Prompt,
    q: Question,
    placeholder_id: int,
    grid: tuple[int, int, int],
    answer: OpenAnswer | None,
    n_ctx: int | None,
    per_frame: bool = False,
    frame_blocks: list[Span] | None = None,
    tail: int = 0,
) -> tuple[list[int], TokenLayout, list[int]]:
    """Token ids of the whole prompt (regions are placed by offsets on the whole text, never by
    tokenizing pieces apart), its layout (the video is one placeholder token, or one per frame; a
    `tail` of tokens the model appends after the frames), and
    the answer's targets: the option letters' ids (multiple choice), or with `answer` the reference's
    ids as they continue the open-ended prompt."""
    true_option = q.answer_index if answer is None else None
    enc = tokenizer(prompt.text, return_offsets_mapping=True)
    ids = enc["input_ids"]
    where = [i for i, t in enumerate(ids) if t == placeholder_id]
    expected = grid[0] if per_frame else 1
    if len(where) != expected:
        raise ValueError(f"{q.sample_id}: expected {expected} video placeholder(s), found {len(where)}")
    try:
        layout = build_layout(prompt, enc["offset_mapping"], where, grid, true_option, frame_blocks, tail)
    except ValueError as err:
        raise ValueError(
            f"{q.sample_id}: {err} (the tokenizer cannot place this part of the prompt)"
        ) from err
    if n_ctx is not None and layout.n_tokens > n_ctx:
        raise ValueError(f"{q.sample_id}: prompt of {layout.n_tokens} tokens exceeds the context ({n_ctx})")
    unknown = tokenizer.unk_token_id
    if unknown is not None and unknown in ids:
        words = [prompt.text[a:b] for (a, b), i in zip(enc["offset_mapping"], ids) if i == unknown][:3]
        raise ValueError(
            f"{q.sample_id}: the tokenizer has no token for part of the prompt (near {words}); "
            "a toy model knows only its training words: retrain it or reword the prompt"
        )
    if answer is None:
        return ids, layout, letter_ids(tokenizer, len(q.candidates), prompt.text, ids, q.sample_id)
    return ids, layout, continuation_ids(tokenizer, prompt.text, ids, answer.reference, q.sample_id)


def check_frame_count(n: int, frames: int) -> None:
    """A clip of `n` frames for a prompt laid out for `frames` (the model's grid), else a ValueError
    naming the setting to change."""
    if n != frames:
        raise ValueError(
            f"{n} frames where the model's prompt takes {frames}: set n_frames to pooling_shape's first "
            "number (8 by default)"
        )


def continuation_ids(tokenizer, text: str, ids: list[int], continuation: str, what: str) -> list[int]:
    """Token ids of `continuation` where it follows `text` (after a space, unless `text` ends with
    whitespace), found by character offsets in the tokenized whole: what the model generates after
    the prompt, not the text tokenized on its own (a BPE tokenizer marks the leading space).
    Leading empty pieces (a lone SentencePiece space) are dropped."""
    start = len(text) + (0 if not text or text[-1].isspace() else 1)
    sep = " " * (start - len(text))
    enc = tokenizer(text + sep + continuation.strip(), return_offsets_mapping=True)
    pairs = list(zip(enc["input_ids"], enc["offset_mapping"]))
    inside = [i for i, (s, e) in pairs if e > s and s >= len(text)]  # the space belongs to the answer
    before = [i for i, (s, e) in pairs if not (e > s and s >= len(text))]
    if before != ids:
        raise ValueError(
            f"{what}: the answer {continuation!r} merges with the end of the prompt when tokenized "
            "together; its first token cannot be read after the prompt"
        )
    while inside and not tokenizer.decode([inside[0]]).strip():
        inside = inside[1:]
    if not inside:
        raise ValueError(f"{what}: the answer {continuation!r} has no tokens")
    return inside


def prepare_sample(
    adapter, q: Question, video_tokens: torch.Tensor, answer, placeholder_id: int, positions=None
) -> PreparedSample:
    """The adapter's prompt (its `encode(q, answer)`) + video tokens [n_video, d] -> decoder
    inputs [1, N, d], positions [1, N] (0..N-1, or `positions(layout)`) and the layout; with an
    `OpenAnswer`, the open-ended prompt (`gt_token` = the reference's first token after the prompt)."""
    ids, layout, targets = adapter.encode(q, answer)
    video = video_tokens.to(adapter.device)
    embeds = embed_prompt(adapter.decoder().embed_tokens, ids, placeholder_id, layout, video)
    pos = torch.arange(layout.n_tokens) if positions is None else positions(layout)
    return PreparedSample(
        inputs_embeds=embeds.unsqueeze(0),
        position_ids=pos.unsqueeze(0).to(adapter.device),
        layout=layout,
        gt_token=targets[q.answer_index] if answer is None else targets[0],
        option_tokens=targets if answer is None else [],
        video_tokens=video_tokens,
    )


def letter_ids(tokenizer, n: int, text: str = "", ids: list[int] | None = None, what: str = "") -> list[int]:
    """Token id of each option letter A, B, ... (the paper reads the answer as one letter token):
    the letter token itself after "(", whitespace or nothing, else (after Video-MME's "Best option:")
    the first token of " A" as it continues the prompt's `text` (tokenized as `ids`)."""
    if text and not (text.endswith("(") or text[-1].isspace()):
        return [continuation_ids(tokenizer, text, ids, letter, what)[0] for letter in LETTERS[:n]]
    ids = tokenizer.convert_tokens_to_ids(list(LETTERS[:n]))
    for letter, i in zip(LETTERS, ids):
        if i is None or i == tokenizer.unk_token_id:
            raise ValueError(f"tokenizer has no token for the option letter {letter!r}")
    return ids


def embed_prompt(
    embed_tokens, ids: list[int], placeholder_id: int, layout: TokenLayout, video_tokens: torch.Tensor
) -> torch.Tensor:
    """Prompt ids + video tokens [T*H*W (+ tail), d] -> input embeddings [N, d]: each placeholder
    replaced by its equal share of the video tokens (all of them, or one frame each), in order."""
    T, H, W = layout.grid
    n_video = len(layout.feature_indices())
    if video_tokens.shape[0] != n_video:
        tail = f" + {n_video - T * H * W}" if n_video != T * H * W else ""
        raise ValueError(
            f"{video_tokens.shape[0]} video tokens where the layout holds {T} x {H} x {W}{tail}: "
            "set n_frames to the model's frames (pooling_shape's first number)"
        )
    text_embeds = embed_tokens(torch.as_tensor(ids, device=video_tokens.device))  # [n_text, d]
    placeholders = [i for i, t in enumerate(ids) if t == placeholder_id]
    shares = video_tokens.to(text_embeds.dtype).chunk(len(placeholders))
    parts, start = [], 0
    for p, share in zip(placeholders, shares):
        parts += [text_embeds[start:p], share]
        start = p + 1
    return torch.cat([*parts, text_embeds[start:]])

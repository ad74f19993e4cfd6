"""The paper's open-ended generation flow (its appendix figure on VCGBench): how information reaches
the words of a free answer.

Per sample: the model answers greedily (no options, no pre-fill on VCGBench); a tagger finds the
answer's anchor words (the paper: verbs); for n = 1, 2, 3 the input is the prompt plus the answer up
to, not including, the n-th anchor's first token, kept only where the greedy next token is that
anchor again. On that input "last" is its last token (the one before the anchor) and "response" the
earlier answer tokens, less the `open_tokens` just before the last (the paper leaves one open); the
knockouts of the `open_ended_flow` experiment are swept over the layers and read as the relative
change of the anchor's probability.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from vlmflow.models.base import Adapter, PreparedSample


@dataclass(frozen=True)
class Anchor:
    n: int  # 1-based rank among the answer's anchor words
    word: str
    token: int  # index of the word's first token among the generated tokens
    token_id: int


def token_spans(tokenizer, ids: list[int]) -> tuple[str, list[tuple[int, int]]]:
    """The decoded answer and each generated token's character span [a, b) in it (a token that adds
    no character, e.g. half of a multi-byte character, gets an empty span)."""
    spans, prev = [], ""
    for k in range(len(ids)):
        text = tokenizer.decode(ids[: k + 1], skip_special_tokens=True)
        common = len(prev) if text.startswith(prev) else 0
        spans.append((common, len(text)))
        prev = text
    return prev, spans


def find_anchors(
    text: str, spans: list[tuple[int, int]], ids: list[int], words, pos: set[str]
) -> list[Anchor]:
    """The answer's words tagged with one of `pos`, in order, each at its first token: the first
    generated token whose characters overlap the word's (a word split over two tokens, or a token
    carrying the space before it, is found all the same)."""
    out = []
    for w in words:
        if w.pos not in pos:
            continue
        hit = [k for k, (a, b) in enumerate(spans) if b > a and a < w.end and b > w.start]
        if hit and all(a.token != hit[0] for a in out):
            out.append(Anchor(len(out) + 1, text[w.start : w.end], hit[0], ids[hit[0]]))
    return out


def with_answer(
    adapter: Adapter, sample: PreparedSample, ids: list[int], open_tokens: int, target: int
) -> PreparedSample:
    """The prompt `sample` followed by the generated tokens `ids` (the answer so far): embeddings and
    positions extended, the layout's `response` = those tokens less the last one and the
    `open_tokens` before it; `gt_token` = the anchor `target`."""
    n0, k = sample.layout.n_tokens, len(ids)
    embeds, positions = sample.inputs_embeds, sample.position_ids
    if k:
        new = adapter.decoder().embed_tokens(torch.tensor([ids], device=embeds.device)).to(embeds.dtype)
        embeds = torch.cat([embeds, new], dim=1)  # [1, N0 + k, d]
        for _ in range(k):
            positions = torch.cat([positions, adapter.next_position(positions)], dim=-1)
    earlier = max(0, k - 1 - open_tokens)
    layout = replace(sample.layout, n_tokens=n0 + k, response=(n0, n0 + earlier))
    return replace(
        sample, inputs_embeds=embeds, position_ids=positions, layout=layout, gt_token=target, option_tokens=[]
    )

"""Compile a Knockout on a TokenLayout to the boolean (query, key) pairs it blocks.

One bool per pair, and only for the query rows the knockout touches (from its first affected row
on): O(N^2) bits at most per distinct knockout, never per layer, per window or per head. Causality
is not in these matrices; the attention function always adds it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vlmflow.knockout.spec import Edge, Knockout
from vlmflow.layout import Span, TokenLayout


@dataclass(frozen=True)
class Blocked:
    """The blocked pairs of one knockout: rows q0..N-1 of the [N, N] (query, key) matrix."""

    q0: int  # first query row with a blocked key (N when nothing is blocked)
    rows: torch.Tensor  # [N - q0, N] bool, True = query may not read key

    @property
    def empty(self) -> bool:
        return not bool(self.rows.any())


def edge_blocks(layout: TokenLayout, edge: Edge) -> list[tuple[Span, Span]]:
    """The (query span, key span) rectangles one edge blocks."""
    frames = list(layout.knockout_frames)
    if edge.source == "cross_frame":  # frame t <- every earlier frame
        return [(frames[t], frames[s]) for t in range(1, len(frames)) for s in range(t)]
    if edge.source == "video_video":
        return [(r, c) for r in frames for c in frames]
    if edge.source == "question_question":
        return [(layout.question, layout.question)]
    return [(r, c) for r in layout.knockout_spans(edge.target) for c in layout.knockout_spans(edge.source)]


def compile_knockout(layout: TokenLayout, knockout: Knockout, device=None, q0: int | None = None) -> Blocked:
    """The knockout's blocked rows from its first affected row on, or from row `q0` when given."""
    N = layout.n_tokens
    blocks = [
        (r, c) for e in knockout.edges for r, c in edge_blocks(layout, e) if r[1] > r[0] and c[1] > c[0]
    ]
    first = min((r[0] for r, _ in blocks), default=N)
    if q0 is not None and q0 > first:
        raise ValueError(f"rows from {q0} on cannot hold this knockout: it blocks row {first}")
    q0 = first if q0 is None else q0
    rows = torch.zeros(N - q0, N, dtype=torch.bool, device=device)
    for (r0, r1), (c0, c1) in blocks:
        rows[r0 - q0 : r1 - q0, c0:c1] = True
    return Blocked(q0, rows)


def blocked_pairs(layout: TokenLayout, knockout: Knockout) -> torch.Tensor:
    """The full [N, N] bool matrix of blocked pairs (for tests and edge counts)."""
    b = compile_knockout(layout, knockout)
    full = torch.zeros(layout.n_tokens, layout.n_tokens, dtype=torch.bool)
    full[b.q0 :] = b.rows
    return full


def kept_edges(n_tokens: int, blocked_per_layer: list[torch.Tensor]) -> int:
    """The paper's edge count (Table 3): per layer the causal (lower-triangle incl. diagonal) pairs
    not blocked, summed over layers."""
    tril = torch.ones(n_tokens, n_tokens, dtype=torch.bool).tril()
    return int(sum((tril & ~b).sum() for b in blocked_per_layer))


def random_like(b: Blocked, seed: int) -> Blocked:
    """The matched random-edge control of a compiled knockout: in every row it blocks, as many causal
    (query >= key) pairs as it blocks there, drawn uniformly from that row's causal keys (seeded)."""
    n_rows, N = b.rows.shape
    dev = b.rows.device
    q = torch.arange(b.q0, b.q0 + n_rows, device=dev)[:, None]
    causal = torch.arange(N, device=dev)[None, :] <= q  # [n_rows, N]
    count = (b.rows & causal).sum(1, keepdim=True)  # [n_rows, 1]
    g = torch.Generator(device=dev).manual_seed(seed)
    score = torch.rand(n_rows, N, generator=g, device=dev).masked_fill(~causal, 2.0)
    rank = score.argsort(1).argsort(1)  # rank of each key among the row's random scores
    return Blocked(b.q0, rank < count)

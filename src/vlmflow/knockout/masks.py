"""Compile a Knockout on a TokenLayout to the (query, key) pairs it blocks, one bit per pair.

Only the query rows the knockout touches are kept (from its first affected row on), packed eight
keys to a byte: at most N^2/8 bytes per distinct knockout, never per layer, per window or per head.
The attention function unpacks the rows it is about to use, a chunk at a time. Causality is not in
these matrices; the attention function always adds it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vlmflow.knockout.spec import Edge, Knockout
from vlmflow.layout import Span, TokenLayout

# rows compiled, drawn or counted at once: bounds the dense bools any of these builds (ROWS x N)
ROWS = 256
_BITS = 1 << torch.arange(8, dtype=torch.uint8)  # [8]: bit j of a byte = key 8k + j


def pack(dense: torch.Tensor) -> torch.Tensor:
    """[r, N] bool -> [r, ceil(N/8)] uint8."""
    r, n = dense.shape
    padded = torch.nn.functional.pad(dense, (0, -n % 8)).view(r, -1, 8)
    return (padded.to(torch.uint8) * _BITS.to(dense.device)).sum(-1, dtype=torch.uint8)


def unpack(bits: torch.Tensor, n_keys: int) -> torch.Tensor:
    """[r, ceil(N/8)] uint8 -> [r, N] bool."""
    dense = (bits.unsqueeze(-1) & _BITS.to(bits.device)) != 0  # [r, N/8, 8]
    return dense.flatten(-2)[:, :n_keys]


@dataclass(frozen=True)
class Blocked:
    """The blocked pairs of one knockout: rows q0..q0+r-1 of the [N, N] (query, key) matrix, packed."""

    q0: int  # first query row with a blocked key (N when nothing is blocked)
    bits: torch.Tensor  # [r, ceil(N/8)] uint8: bit k of row i = query q0+i may not read key k
    n_keys: int  # N

    @classmethod
    def from_dense(cls, q0: int, rows: torch.Tensor) -> "Blocked":
        """From [r, N] bool rows (True = blocked), packed in chunks of ROWS rows."""
        bits = torch.cat([pack(rows[i : i + ROWS]) for i in range(0, len(rows), ROWS)] or [pack(rows)])
        return cls(q0, bits, rows.shape[1])

    @property
    def n_rows(self) -> int:
        return self.bits.shape[0]

    @property
    def nbytes(self) -> int:
        return self.bits.numel()

    @property
    def empty(self) -> bool:
        return not bool(self.bits.any())

    def rows(self, r0: int = 0, r1: int | None = None) -> torch.Tensor:
        """Rows r0..r1-1 (counted from q0) as [r, N] bool."""
        return unpack(self.bits[r0:r1], self.n_keys)

    def select(self, rows: torch.Tensor) -> torch.Tensor:
        """Rows `rows` (counted from q0, any order) as [len(rows), N] bool."""
        return unpack(self.bits[rows], self.n_keys)

    def from_row(self, q0: int, n_keys: int | None = None) -> "Blocked":
        """The same pairs held from row q0 <= self.q0 on (rows before are all False), over `n_keys`
        >= N keys (the keys after N are never blocked)."""
        if q0 > self.q0:
            raise ValueError(f"rows from {q0} on cannot hold these pairs: they block row {self.q0}")
        n_keys = self.n_keys if n_keys is None else n_keys
        width = (n_keys + 7) // 8
        bits = self.bits.new_zeros(self.q0 - q0 + self.n_rows, width)
        bits[self.q0 - q0 :, : self.bits.shape[1]] = self.bits
        return Blocked(q0, bits, n_keys)

    def causal_rows(self, r0: int, r1: int) -> torch.Tensor:
        """[r, N] bool: the causal (query >= key) keys of rows r0..r1-1."""
        q = torch.arange(self.q0 + r0, self.q0 + min(r1, self.n_rows), device=self.bits.device)
        return torch.arange(self.n_keys, device=self.bits.device)[None, :] <= q[:, None]


def edge_blocks(layout: TokenLayout, edge: Edge) -> list[tuple[Span, Span]]:
    """The (query span, key span) rectangles one edge blocks."""
    frames = list(layout.knockout_frames)
    if edge.source == "cross_frame":  # frame t <- every earlier frame
        return [(frames[t], frames[s]) for t in range(1, len(frames)) for s in range(t)]
    if edge.source == "video_video":
        video = layout.knockout_spans("video")
        return [(r, c) for r in video for c in video]
    if edge.source == "question_question":
        return [(layout.question, layout.question)]
    return [(r, c) for r in layout.knockout_spans(edge.target) for c in layout.knockout_spans(edge.source)]


def compile_knockout(layout: TokenLayout, knockout: Knockout, device=None, q0: int | None = None) -> Blocked:
    """The knockout's blocked rows from its first affected row on, or from row `q0` when given;
    built ROWS rows at a time, so nothing larger than its packed bits is ever whole."""
    N = layout.n_tokens
    blocks = [
        (r, c) for e in knockout.edges for r, c in edge_blocks(layout, e) if r[1] > r[0] and c[1] > c[0]
    ]
    first = min((r[0] for r, _ in blocks), default=N)
    if q0 is not None and q0 > first:
        raise ValueError(f"rows from {q0} on cannot hold this knockout: it blocks row {first}")
    q0 = first if q0 is None else q0
    bits = torch.zeros(N - q0, (N + 7) // 8, dtype=torch.uint8, device=device)
    for a in range(q0, N, ROWS):
        b = min(a + ROWS, N)
        dense = torch.zeros(b - a, N, dtype=torch.bool, device=device)
        for (r0, r1), (c0, c1) in blocks:
            if r0 < b and r1 > a:
                dense[max(r0, a) - a : min(r1, b) - a, c0:c1] = True
        bits[a - q0 : b - q0] = pack(dense)
    return Blocked(q0, bits, N)


def blocked_pairs(layout: TokenLayout, knockout: Knockout) -> torch.Tensor:
    """The full [N, N] bool matrix of blocked pairs (for tests and edge counts)."""
    b = compile_knockout(layout, knockout)
    full = torch.zeros(layout.n_tokens, layout.n_tokens, dtype=torch.bool)
    full[b.q0 :] = b.rows()
    return full


def kept_edges(n_tokens: int, blocked_per_layer: list[torch.Tensor]) -> int:
    """The paper's edge count (Table 3): per layer the causal (lower-triangle incl. diagonal) pairs
    not blocked, summed over layers."""
    tril = torch.ones(n_tokens, n_tokens, dtype=torch.bool).tril()
    return int(sum((tril & ~b).sum() for b in blocked_per_layer))


def random_like(b: Blocked, seed: int) -> Blocked:
    """The matched random-edge control of a compiled knockout: in every row it blocks, as many causal
    (query >= key) pairs as it blocks there, drawn uniformly from that row's causal keys (seeded;
    drawn ROWS rows at a time from one generator)."""
    g = torch.Generator(device=b.bits.device).manual_seed(seed)
    bits = torch.empty_like(b.bits)
    for r in range(0, b.n_rows, ROWS):
        causal = b.causal_rows(r, r + ROWS)  # [rows, N]
        count = (b.rows(r, r + ROWS) & causal).sum(1, keepdim=True)  # [rows, 1]
        score = torch.rand(causal.shape, generator=g, device=b.bits.device).masked_fill(~causal, 2.0)
        rank = score.argsort(1).argsort(1)  # rank of each key among the row's random scores
        bits[r : r + ROWS] = pack(rank < count)
    return Blocked(b.q0, bits, b.n_keys)

"""Compile a Knockout on a TokenLayout to a boolean [N, N] matrix of blocked (query, key) pairs.

One bool per pair: O(N^2) bytes per condition, never per layer or per head. Causality is not in
this matrix; the attention function always adds it.
"""

from __future__ import annotations

import torch

from vlmflow.knockout.spec import Knockout
from vlmflow.layout import TokenLayout


def blocked_pairs(layout: TokenLayout, knockout: Knockout) -> torch.Tensor:
    """[N, N] bool, True where query row i may not read key column j."""
    N = layout.n_tokens
    m = torch.zeros(N, N, dtype=torch.bool)
    for e in knockout.edges:
        if e.source == "cross_frame":
            T = layout.grid[0]
            for t in range(1, T):
                q0, q1 = layout.frame(t)
                m[q0:q1, layout.video[0] : q0] = True
        elif e.source == "video_video":
            v0, v1 = layout.video
            m[v0:v1, v0:v1] = True
        elif e.source == "question_question":
            q0, q1 = layout.question
            m[q0:q1, q0:q1] = True
        else:
            rows = torch.as_tensor(layout.indices(e.target))
            cols = torch.as_tensor(layout.indices(e.source))
            m[rows[:, None], cols[None, :]] = True
    return m


def first_affected_row(blocked: torch.Tensor) -> int:
    """Smallest query row with a blocked key; rows above it are unchanged by the knockout."""
    rows = blocked.any(dim=1).nonzero()
    return int(rows[0]) if len(rows) else blocked.shape[0]


def kept_edges(n_tokens: int, blocked_per_layer: list[torch.Tensor]) -> int:
    """Spec C.10 edge count: per layer the causal (lower-triangle incl. diagonal) pairs not blocked,
    summed over layers."""
    tril = torch.ones(n_tokens, n_tokens, dtype=torch.bool).tril()
    return int(sum((tril & ~b).sum() for b in blocked_per_layer))

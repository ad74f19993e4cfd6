"""Effective pathways (the paper's Table 3): keep only the routes that carry the answer, each in its
own layers, and block everything else of seven rules; and the control, random blocking of as many
edges per layer.

A `Pathway` is data: for each of three routes the 1-indexed, inclusive layer range in which it is
kept, as the paper writes them (e.g. LLaVA-NeXT-7B-Video-FT: cross-frame L6-15, video -> question
L6-20, question -> last L16-25). In layer l (0-indexed) the blocked edges are the union of:
1. cross-frame (frame t <- frames < t) unless l is in the cross-frame range;
2. video -> question unless l is in the video -> question range;
3. question -> last unless l is in the question -> last range;
4. last -> last and 5. video -> last in every layer;
6. all video <- video edges after the video -> question range;
7. all question <- question edges after the question -> last range.
Prefix keys, prefix rows and the post-question instruction are never blocked. Masks are built per
layer when that layer runs (see `KnockoutEngine.run_layerwise`), never stored for all layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vlmflow.knockout.masks import ROWS, Blocked
from vlmflow.knockout.spec import Edge, Knockout
from vlmflow.layout import TokenLayout

ROUTES = ("cross_frame", "video_question", "question_last")


@dataclass(frozen=True)
class Pathway:
    name: str
    n_layers: int
    cross_frame: tuple[int, int]  # kept layers, 1-indexed inclusive
    video_question: tuple[int, int]
    question_last: tuple[int, int]

    def __post_init__(self):
        for route in ROUTES:
            a, b = getattr(self, route)
            if not 1 <= a <= b <= self.n_layers:
                raise ValueError(
                    f"pathway {self.name!r}: {route} range L{a}-{b} is not within L1-{self.n_layers}"
                )

    def kept(self, route: str, layer: int) -> bool:
        """Is `route` kept in 0-indexed `layer`?"""
        a, b = getattr(self, route)
        return a <= layer + 1 <= b

    def knockout(self, layer: int) -> Knockout:
        """The edges blocked in 0-indexed `layer` (rules 1-7 above)."""
        edges = [Edge("last", "last"), Edge("video", "last")]
        if not self.kept("cross_frame", layer):
            edges.append(Edge("cross_frame"))
        if not self.kept("video_question", layer):
            edges.append(Edge("video", "question"))
        if not self.kept("question_last", layer):
            edges.append(Edge("question", "last"))
        if layer + 1 > self.video_question[1]:
            edges.append(Edge("video_video"))
        if layer + 1 > self.question_last[1]:
            edges.append(Edge("question_question"))
        return Knockout(f"{self.name} L{layer + 1}", tuple(edges))

    def to_dict(self) -> dict:
        """The exportable artifact: the per-layer rule spec, never dense masks."""
        return dict(name=self.name, n_layers=self.n_layers, **{r: list(getattr(self, r)) for r in ROUTES})

    @classmethod
    def from_dict(cls, d: dict) -> "Pathway":
        missing = [k for k in ("name", "n_layers", *ROUTES) if k not in d]
        if missing:
            raise ValueError(f"pathway spec lacks {missing}: {d}")
        return cls(d["name"], int(d["n_layers"]), *(tuple(int(x) for x in d[r]) for r in ROUTES))


# The paper's kept windows (Table 3), and the toy's (8 layers; read off its Figs. 2 and 3).
PRESETS = {
    "llava-next-7b-video-ft": Pathway("LLaVA-NeXT-7B-Video-FT", 32, (6, 15), (6, 20), (16, 25)),
    "llava-next-13b-video-ft": Pathway("LLaVA-NeXT-13B-Video-FT", 40, (6, 15), (6, 20), (16, 30)),
    "mini-internvl-4b-video-ft": Pathway("Mini-InternVL-4B-Video-FT", 32, (6, 15), (6, 20), (11, 30)),
    "videollama3-7b": Pathway("VideoLLaMA3-7B", 28, (1, 15), (6, 20), (21, 28)),
    "toy": Pathway("toy", 8, (1, 4), (1, 6), (6, 8)),
}


def pathway_from_config(value, n_layers: int) -> Pathway:
    """A preset name or an explicit spec {name, n_layers, cross_frame: [a, b], ...}; checked
    against the model's depth."""
    if isinstance(value, str):
        if value not in PRESETS:
            raise ValueError(f"unknown pathway preset {value!r}; presets: {sorted(PRESETS)}")
        p = PRESETS[value]
    else:
        p = Pathway.from_dict(value)
    if p.n_layers != n_layers:
        raise ValueError(f"pathway {p.name!r} is for {p.n_layers} layers; this model has {n_layers}")
    return p


def causal_pairs(n_tokens: int) -> int:
    """Edges of a full causal layer: N(N+1)/2."""
    return n_tokens * (n_tokens + 1) // 2


def blocked_causal(b: Blocked) -> int:
    """How many causal (query >= key) pairs a compiled knockout blocks."""
    return sum(
        int((b.rows(r, r + ROWS) & b.causal_rows(r, r + ROWS)).sum()) for r in range(0, b.n_rows, ROWS)
    )


def random_blocked(layout: TokenLayout, n_block: int, seed: int, layer: int, device=None) -> Blocked:
    """The paper's random control for one layer: `n_block` pairs drawn uniformly without replacement
    from the causal pairs whose query and key are at or after the video start (seeded per layer)."""
    v0 = layout.video_range[0]
    K = layout.n_tokens - v0
    total = causal_pairs(K)
    if not 0 <= n_block <= total:
        raise ValueError(f"cannot block {n_block} of the {total} pairs after the video start")
    g = torch.Generator().manual_seed(seed * 1_000_003 + layer)
    pick = torch.randperm(total, generator=g)[:n_block]
    i = ((torch.sqrt(8 * pick.double() + 1) - 1) / 2).floor().long()  # row of the lower-triangle index
    i += ((i + 1) * (i + 2) // 2 <= pick).long() - (i * (i + 1) // 2 > pick).long()  # float rounding guard
    j = pick - i * (i + 1) // 2
    k = v0 + j  # the keys; distinct pairs, so summing their bits sets them
    bits = torch.zeros(K, (layout.n_tokens + 7) // 8, dtype=torch.uint8)
    bits.index_put_((i, k // 8), (1 << (k % 8)).to(torch.uint8), accumulate=True)
    return Blocked(v0, bits.to(device), layout.n_tokens)

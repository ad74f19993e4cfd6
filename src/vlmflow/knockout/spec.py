"""Declarative attention knockouts: which (query <- key) edges to cut, in which layers, in which heads.

A `Knockout` is data: a list of `Edge(source, target)` pairs of TokenLayout group names
("video", "frame[2]", "question", "non_option_question", "true_option", "false_options", "last", ...)
or one of the relations "cross_frame" (frame t <- frames < t), "video_video" (all video <- video
edges, self-edges included) and "question_question". "source -> target" reads as in the paper:
the target's queries can no longer read the source's keys. Specs round-trip through plain dicts,
so the workflow config can name them in YAML.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

RELATIONS = {"cross_frame", "video_video", "question_question"}
MODES = ("pre_softmax", "post_softmax")
WINDOW_STYLES = ("center", "inverse", "top_down", "bottom_up")


@dataclass(frozen=True)
class Edge:
    source: str  # key group, or a relation name (then target is unused)
    target: str = ""  # query group


@dataclass(frozen=True)
class Knockout:
    """One blocking condition. mode "pre_softmax" is the paper's -inf on the scores (renormalised);
    "post_softmax" zeroes attention probabilities after the softmax without renormalising."""

    name: str
    edges: tuple[Edge, ...]
    heads: tuple[int, ...] | None = None  # None = all heads
    mode: str = "pre_softmax"

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"knockout {self.name!r}: mode must be one of {MODES}, got {self.mode!r}")
        for e in self.edges:
            if e.source in RELATIONS and e.target:
                raise ValueError(f"knockout {self.name!r}: relation {e.source!r} takes no target")
            if e.source not in RELATIONS and not e.target:
                raise ValueError(f"knockout {self.name!r}: edge from {e.source!r} needs a target group")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["edges"] = [[e["source"], e["target"]] if e["target"] else [e["source"]] for e in d["edges"]]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Knockout":
        edges = tuple(Edge(*e) for e in d["edges"])
        heads = tuple(d["heads"]) if d.get("heads") is not None else None
        return cls(d["name"], edges, heads, d.get("mode", "pre_softmax"))


@dataclass(frozen=True)
class Experiment:
    """A named knockout experiment: its blocks, each swept over the layers in a window of `window`
    layers (None: the model's window) of style `window_style` (None: the configured one). With
    `head_groups`, each block runs once per group of heads (the heads split evenly into that many
    groups; the model's number of heads for one group per head): a layer x head map of its effect."""

    name: str
    blocks: tuple[Knockout, ...]
    window: int | None = None
    window_style: str | None = None
    head_groups: int | None = None

    @classmethod
    def from_dict(cls, name: str, d: dict) -> "Experiment":
        """An experiment as the config writes it: blocks of {name, edges}, the experiment's optional
        `heads` and `mode` applying to every block."""
        unknown = set(d) - {"blocks", "heads", "mode", "window", "window_style", "head_groups"}
        if unknown:
            raise ValueError(f"experiment {name!r}: unknown keys {sorted(unknown)}")
        if not d.get("blocks"):
            raise ValueError(f"experiment {name!r} has no blocks")
        extra = {k: d[k] for k in ("heads", "mode") if d.get(k) is not None}
        blocks = tuple(Knockout.from_dict({**b, **extra}) for b in d["blocks"])
        if len({b.name for b in blocks}) < len(blocks):
            raise ValueError(f"experiment {name!r}: two blocks share a name")
        style = d.get("window_style")
        if style is not None and style not in WINDOW_STYLES:
            raise ValueError(
                f"experiment {name!r}: window_style must be one of {WINDOW_STYLES}, got {style!r}"
            )
        return cls(name, blocks, d.get("window"), style, d.get("head_groups"))

    def head_blocks(self, n_heads: int) -> tuple[Knockout, ...]:
        """The blocks as they run on a model of `n_heads` heads: one per head group with
        `head_groups` (named "<block> [heads a-b]"), else as defined."""
        if self.head_groups is None:
            return self.blocks
        if not 1 <= self.head_groups <= n_heads or n_heads % self.head_groups:
            raise ValueError(
                f"experiment {self.name!r}: head_groups {self.head_groups} does not divide the model's "
                f"{n_heads} heads"
            )
        size = n_heads // self.head_groups
        groups = [tuple(range(g * size, (g + 1) * size)) for g in range(self.head_groups)]
        return tuple(
            replace(b, name=f"{b.name} [{head_label(g)}]", heads=g) for b in self.blocks for g in groups
        )


def head_label(heads: tuple[int, ...] | None) -> str:
    """ "heads 0-3", "head 5", or "all heads"."""
    if heads is None:
        return "all heads"
    return f"head {heads[0]}" if len(heads) == 1 else f"heads {heads[0]}-{heads[-1]}"


def _paper_experiments() -> dict[str, Experiment]:
    import yaml

    with open(Path(__file__).with_name("experiments.yaml")) as fh:
        return {name: Experiment.from_dict(name, d) for name, d in yaml.safe_load(fh).items()}


# The paper's knockout experiments (Figs. 2, 3, 7, 8 and the failure cases), by name, from
# experiments.yaml beside this file; block names as in its plots.
PAPER_EXPERIMENTS: dict[str, Experiment] = _paper_experiments()
# those whose groups exist only in the open-ended flow's inputs (prompt + answer so far)
OPEN_ENDED_EXPERIMENTS = frozenset({"open_ended_flow"})
# the knockouts of the multiple-choice experiments, by name
EXPERIMENTS: dict[str, list[Knockout]] = {
    name: list(e.blocks) for name, e in PAPER_EXPERIMENTS.items() if name not in OPEN_ENDED_EXPERIMENTS
}

# --- group names, checked before a job runs -----------------------------------------------------
GROUPS = ("all", "prefix", "video", "question", "non_option_question", "true_option", "false_options")
GROUPS += ("predicted_option", "post", "last", "response")
INDEXED = {"frame": 1, "cell": 3, "option": 1}  # name[index, ...]: how many indices


def check_group(group: str, grid: tuple[int, int, int] | None = None) -> None:
    """Raise ValueError unless `group` names a token group of the layouts (its frame and cell indices
    within `grid` (T, H, W) when known), with the valid choices."""
    m = re.fullmatch(r"(\w+)(?:\[([\d,\s]+)\])?", group)
    name, args = (m.group(1), m.group(2)) if m else (group, None)
    if m is None or (name not in GROUPS and name not in INDEXED):
        raise ValueError(
            f"unknown token group {group!r}; groups: {', '.join(GROUPS)}, frame[t], cell[t,h,w], option[k], "
            f"and the relations {', '.join(sorted(RELATIONS))}"
        )
    want = INDEXED.get(name, 0)
    idx = [int(x) for x in args.split(",")] if args else []
    if len(idx) != want:
        raise ValueError(
            f"token group {group!r}: {name} takes {want} index(es)"
            if want
            else f"token group {group!r}: {name} takes no index"
        )
    if grid is not None and name in ("frame", "cell"):
        bounds = grid[: len(idx)]
        if any(not 0 <= i < n for i, n in zip(idx, bounds)):
            raise ValueError(
                f"token group {group!r} is outside the model's video grid {tuple(grid)} (T, H, W)"
            )


def check_experiment(e: Experiment, n_heads: int | None = None, grid=None) -> None:
    """Every group of every block exists (within the grid when known), heads within the model's."""
    for b in e.blocks:
        for edge in b.edges:
            for g in () if edge.source in RELATIONS else (edge.source, edge.target):
                try:
                    check_group(g, grid)
                except ValueError as err:
                    raise ValueError(f"experiment {e.name!r}, block {b.name!r}: {err}") from None
        if n_heads is not None and b.heads is not None and any(not 0 <= h < n_heads for h in b.heads):
            raise ValueError(
                f"experiment {e.name!r}, block {b.name!r}: heads {list(b.heads)} beyond the model's "
                f"{n_heads} heads (0..{n_heads - 1})"
            )
    if n_heads is not None:
        e.head_blocks(n_heads)


@dataclass(frozen=True)
class Window:
    """Layers a knockout applies to, for one point of a sweep (`centre` is 0-indexed)."""

    centre: int
    layers: tuple[int, ...]
    size: int
    style: str = "center"


def sweep(n_layers: int, size: int, style: str = "center", centres: list[int] | None = None) -> list[Window]:
    """The paper's layer windows for each centre l: center = [l-k//2, l+k//2] clipped; inverse = all but
    that window; top_down = [l, L-1]; bottom_up = [0, l]."""
    if style not in WINDOW_STYLES:
        raise ValueError(f"window style must be one of {WINDOW_STYLES}, got {style!r}")
    if size < 1:
        raise ValueError(f"window size must be >= 1, got {size}")
    out = []
    for c in centres if centres is not None else range(n_layers):
        if not 0 <= c < n_layers:
            raise ValueError(f"window centre {c} outside 0..{n_layers - 1}")
        lo, hi = max(0, c - size // 2), min(n_layers - 1, c + size // 2)
        layers = {
            "center": range(lo, hi + 1),
            "inverse": [x for x in range(n_layers) if not lo <= x <= hi],
            "top_down": range(c, n_layers),
            "bottom_up": range(0, c + 1),
        }[style]
        out.append(Window(c, tuple(layers), size, style))
    return out


def explicit_window(layers: list[int], n_layers: int) -> Window:
    """A window given as an explicit layer list (e.g. "the first half of the layers")."""
    bad = [x for x in layers if not 0 <= x < n_layers]
    if bad or not layers:
        raise ValueError(f"explicit window {layers}: layers must be a non-empty subset of 0..{n_layers - 1}")
    return Window(min(layers), tuple(sorted(set(layers))), len(set(layers)), "explicit")


@dataclass
class Condition:
    """A knockout in a window: one forward's worth of blocking."""

    knockout: Knockout
    window: Window
    meta: dict = field(default_factory=dict)

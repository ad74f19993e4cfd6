"""Declarative attention knockouts: which (query <- key) edges to cut, in which layers, in which heads.

A `Knockout` is data: a list of `Edge(source, target)` pairs of TokenLayout group names
("video", "frame[2]", "question", "non_option_question", "true_option", "false_options", "last", ...)
or one of the relations "cross_frame" (frame t <- frames < t), "video_video" (all video <- video
edges, self-edges included) and "question_question". "source -> target" reads as in the paper:
the target's queries can no longer read the source's keys. Specs round-trip through plain dicts,
so the workflow config can name them in YAML.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

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


def _k(name: str, *pairs: tuple[str, ...]) -> Knockout:
    return Knockout(name, tuple(Edge(*p) for p in pairs))


# The paper's knockout experiments (Figs. 2, 3, 7, 8 and the failure cases), by name; block names
# as in its plots.
EXPERIMENTS: dict[str, list[Knockout]] = {
    "cross_frame": [_k("No cross-frame interactions", ("cross_frame",))],
    "vql_to_ql": [
        _k("Video -> Question", ("video", "question")),
        _k("Video -> Last", ("video", "last")),
        _k("Question -> Last", ("question", "last")),
        _k("Last -> Last", ("last", "last")),
    ],
    "question_and_options_to_last": [
        _k("Non-option question -> Last", ("non_option_question", "last")),
        _k("True option -> Last", ("true_option", "last")),
        _k("False options -> Last", ("false_options", "last")),
    ],
    "vq_to_true_opt": [
        _k("Video -> Non-option question", ("video", "non_option_question")),
        _k("Non-option question -> True option", ("non_option_question", "true_option")),
        _k("Video -> True option", ("video", "true_option")),
    ],
    # failure cases: the option a wrongly answering model chose in place of the true one
    "vq_to_false_opt": [
        _k("Video -> Non-option question", ("video", "non_option_question")),
        _k("Non-option question -> False option", ("non_option_question", "predicted_option")),
        _k("Video -> False option", ("video", "predicted_option")),
    ],
}


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

"""Effective pathways and random blocking (the paper's Table 3): rules, edge counts, and the engine's
per-layer masks against the paper's dense per-layer masks."""

import numpy as np
import pytest
import torch
from conftest import synthetic_sample

from vlmflow.knockout.engine import KnockoutEngine
from vlmflow.knockout.masks import compile_knockout
from vlmflow.knockout.pathways import (
    PRESETS,
    Pathway,
    blocked_causal,
    causal_pairs,
    pathway_from_config,
    random_blocked,
)
from vlmflow.knockout.reference import reference_probs_layerwise
from vlmflow.layout import TokenLayout


def paper_layout(grid=(8, 12, 12), prefix=50, gap=5, question=46, post=14) -> TokenLayout:
    """A layout of the paper's shape: system prompt, video, the `\\n USER:` gap, a TVBench question
    with four options, the instruction and the answer prompt."""
    T, H, W = grid
    frames = tuple((prefix + t * H * W, prefix + (t + 1) * H * W) for t in range(T))
    q0 = frames[-1][1] + gap
    q1 = q0 + question
    options = tuple((q1 - 8 * (4 - k), q1 - 8 * (3 - k)) for k in range(4))
    return TokenLayout(q1 + post, frames, grid, (q0, q1), (q0 + 2, options[0][0] - 2), options, 1)


def kept_fraction(p: Pathway, layout: TokenLayout) -> float:
    full = causal_pairs(layout.n_tokens)
    kept = sum(full - blocked_causal(compile_knockout(layout, p.knockout(l))) for l in range(p.n_layers))
    return kept / (p.n_layers * full)


@pytest.mark.parametrize(
    "preset,grid,expected",
    [
        ("llava-next-7b-video-ft", (8, 12, 12), 42.7),
        ("llava-next-13b-video-ft", (8, 12, 12), 36.3),
        ("mini-internvl-4b-video-ft", (8, 16, 16), 39.6),
    ],
)
def test_kept_edges_reproduce_the_papers_fractions(preset, grid, expected):
    layout = paper_layout(grid)
    assert layout.n_tokens == (1267 if grid == (8, 12, 12) else 2163)  # the paper's implied mean lengths
    assert 100 * kept_fraction(PRESETS[preset], layout) == pytest.approx(expected, abs=0.06)


def test_rules_per_layer_follow_the_windows():
    p = PRESETS["llava-next-7b-video-ft"]
    names = lambda l: {e.source if not e.target else f"{e.source}->{e.target}" for e in p.knockout(l).edges}  # noqa: E731
    always = {"last->last", "video->last"}
    assert names(4) == always | {"cross_frame", "video->question", "question->last"}  # L5: nothing kept
    assert names(5) == always | {"question->last"}  # L6: cross-frame and video -> question kept
    assert names(15) == always | {"cross_frame"}  # L16: video -> question and question -> last kept
    assert names(20) == always | {"cross_frame", "video->question", "video_video"}  # L21
    assert names(31) == always | {
        "cross_frame",
        "video->question",
        "question->last",
        "video_video",
        "question_question",
    }


def test_specs_round_trip_and_check_depth():
    p = PRESETS["toy"]
    assert Pathway.from_dict(p.to_dict()) == p
    assert pathway_from_config(p.to_dict(), 8) == p
    with pytest.raises(ValueError, match="8 layers; this model has 32"):
        pathway_from_config("toy", 32)
    with pytest.raises(ValueError, match="not within"):
        Pathway("bad", 8, (0, 3), (1, 3), (4, 8))


def test_random_blocking_draws_the_count_from_the_allowed_pairs():
    layout = paper_layout((4, 3, 3), prefix=10, gap=2, question=20, post=5)
    v0, N = layout.video_range[0], layout.n_tokens
    b = random_blocked(layout, 500, seed=3, layer=2)
    full = torch.zeros(N, N, dtype=torch.bool)
    full[b.q0 :] = b.rows()
    i, j = full.nonzero(as_tuple=True)
    assert len(i) == 500 and bool((j <= i).all()) and bool((j >= v0).all())
    assert blocked_causal(b) == 500
    assert torch.equal(random_blocked(layout, 500, 3, 2).rows(), b.rows())  # seeded
    assert not torch.equal(random_blocked(layout, 500, 3, 1).rows(), b.rows())  # another layer, other pairs
    everything = random_blocked(layout, causal_pairs(N - v0), 0, 0)
    assert blocked_causal(everything) == causal_pairs(N - v0)


def dense_pathway(layout: TokenLayout, p: Pathway, layer: int) -> torch.Tensor:
    """The paper's per-layer rule, written out with index lists (independent of compile_knockout)."""
    N = layout.n_tokens
    blocked = np.zeros((N, N), bool)
    video, q, last = layout.indices("video"), layout.indices("question"), layout.indices("last")

    def cut(rows, cols):
        blocked[np.ix_(rows, cols)] = True

    cut(last, last)
    cut(last, video)
    if not p.kept("cross_frame", layer):
        for t in range(1, layout.grid[0]):
            cut(
                layout.indices(f"frame[{t}]"),
                np.concatenate([layout.indices(f"frame[{s}]") for s in range(t)]),
            )
    if not p.kept("video_question", layer):
        cut(q, video)
    if not p.kept("question_last", layer):
        cut(last, q)
    if layer + 1 > p.video_question[1]:
        cut(video, video)
    if layer + 1 > p.question_last[1]:
        cut(q, q)
    return torch.from_numpy(blocked)


def test_pathway_and_random_forwards_equal_the_dense_per_layer_reference(tiny_adapter):
    q, frames = synthetic_sample("moving_direction")
    sample = tiny_adapter.prepare(q, tiny_adapter.video_features(tiny_adapter.pixel_values(frames)))
    L = sample.layout
    engine = KnockoutEngine(tiny_adapter)
    clean = engine.clean(sample)
    p = Pathway("tiny", 4, (1, 2), (1, 3), (3, 4))
    fast = engine.run_layerwise(sample, lambda l: compile_knockout(L, p.knockout(l)), clean)
    ref = reference_probs_layerwise(tiny_adapter, q, frames, lambda l: dense_pathway(L, p, l))
    assert (fast - ref).abs().max() <= 1e-5 and int(fast.argmax()) == int(ref.argmax())
    assert (fast - clean.probs).abs().max() > 1e-4  # the pathway does change the output

    counts = [blocked_causal(compile_knockout(L, p.knockout(l))) for l in range(4)]
    rand = lambda l: random_blocked(L, counts[l], seed=7, layer=l)  # noqa: E731
    fast_r = engine.run_layerwise(sample, rand, clean)

    def dense_random(l):
        full = torch.zeros(L.n_tokens, L.n_tokens, dtype=torch.bool)
        b = rand(l)
        full[b.q0 :] = b.rows()
        return full

    ref_r = reference_probs_layerwise(tiny_adapter, q, frames, dense_random)
    assert (fast_r - ref_r).abs().max() <= 1e-5 and int(fast_r.argmax()) == int(ref_r.argmax())
    assert (fast_r - fast).abs().max() > 1e-4


def test_search_keeps_each_route_where_its_knockout_hurts():
    import pandas as pd

    from vlmflow.stages.pathways import search_windows

    rows = []
    drop = {
        "No cross-frame interactions": {2: -40, 3: -10},
        "Video -> Question": {1: -60, 4: -6},
        "Question -> Last": {},
    }  # this route never hurts: kept where it hurts most
    for block, by_layer in drop.items():
        for task in ("a", "b"):
            for layer in range(1, 9):
                change = by_layer.get(layer, -1.0 if layer == 7 else 0.0) if task == "a" else 0.0
                rows.append(
                    dict(
                        block=block,
                        task=task,
                        layer=layer,
                        window=3,
                        window_style="center",
                        rel_change=change,
                    )
                )
    p, why = search_windows(pd.DataFrame(rows), 8, "s", threshold=5.0)
    assert p.cross_frame == (1, 4)  # centres 2-3, window 3
    assert p.video_question == (1, 5)  # centres 1 and 4
    assert p.question_last == (6, 8)  # centre 7 (the most negative), clipped at 8
    assert why["window_centres_used"]["video_question"] == [1, 4]


def test_the_default_run_writes_table3(finished_run):
    import pandas as pd

    t = pd.read_csv(finished_run / "figures/table3_effective_pathways.csv")
    assert set(t.setting) == {"full", "pathway", "random"}
    assert set(t[t.setting == "pathway"].pathway) == {"toy", "searched on synthetic"}
    full = t[t.setting == "full"].iloc[0]
    assert full.kept_pct == 100 and (t[t.setting != "full"].kept_pct < 100).all()
    for name in ("toy", "searched on synthetic"):  # random blocking is matched in edge count
        path = t[(t.setting == "pathway") & (t.pathway == name)].iloc[0]
        rand = t[(t.setting == "random") & (t.pathway == name)].iloc[0]
        assert rand.edges == path.edges and rand.seeds == 3
    rows = pd.read_parquet(finished_run / "results/synthetic/toy-video/pathways.parquet")
    base = pd.concat(
        pd.read_parquet(p) for p in (finished_run / "results/synthetic/toy-video/baseline").glob("*.parquet")
    )
    assert len(rows[rows.setting == "full"]) == len(base)  # every sample, not only the correct ones
    assert (finished_run / "results/synthetic/toy-video/pathways/searched.yaml").is_file()
    assert (finished_run / "figures/pathways_tradeoff.png").stat().st_size > 0

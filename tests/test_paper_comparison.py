"""The paper comparison on made-up rows whose verdicts are known: each published number beside the
run's, agrees / differs within the tolerance of the paper's rounding or plot reading, "other model
or data" on another checkpoint or a generated benchmark, "not run" where the run has nothing."""

import pandas as pd
import pytest

from vlmflow.paper_comparison import Run, compare, published

M = "llava-next-7b-video-ft"


def curve(task, label_col, label, means: dict[int, float]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"task": task, label_col: label, "layer": l, "mean": m, "ci_low": m, "ci_high": m, "n": 5}
            for l, m in means.items()
        ]
    )


def tables():
    table3 = pd.DataFrame(
        [
            dict(model=M, dataset="tvbench", setting="full", pathway=None, accuracy=51.5, kept_pct=100.0),
            dict(model=M, dataset="tvbench", setting="pathway", pathway=M, accuracy=51.3, kept_pct=42.4),
            dict(
                model=M,
                dataset="tvbench",
                setting="pathway",
                pathway="searched on tvbench",
                accuracy=51.2,
                kept_pct=30.0,
            ),
            dict(model=M, dataset="tvbench", setting="random", pathway=M, accuracy=40.1, kept_pct=42.4),
        ]
    )
    fig2 = pd.concat(
        [
            curve("action_antonym", "model_label", M, {9: -5.0, 10: -13.0, 11: -4.0}),  # -12 at 9-11: agrees
            curve("action_antonym", "model_label", f"{M} (random edges)", {10: -80.0}),  # a control: ignored
            curve("object_count", "model_label", M, {8: -30.0, 12: -44.0}),  # -43 at 8: value yes, layer no
        ]
    )
    fig9 = curve("action_antonym", "option", "True option", {30: 70.0, 31: 88.0, 32: 70.0})  # last: 80 +- 3
    table2 = pd.DataFrame([dict(model=M, task="object_count", mc_drop=60.8, mc_drop_relative=75.0)])
    return dict(table3=table3, fig2=fig2, fig9=fig9, table2=table2)


FIGURES = {name: ("tvbench", M) for name in ("fig2", "fig9", "table2")}


def verdict(df, source, quantity, task="", dataset="tvbench", paper_model=M):
    row = df[
        (df.source == source)
        & (df.quantity == quantity)
        & (df.task == task)
        & (df.dataset == dataset)
        & (df.paper_model == paper_model)
    ]
    assert len(row) == 1, (source, quantity, task)
    return row.verdict.iloc[0]


def test_the_papers_checkpoint_on_the_papers_benchmark_gets_agrees_or_differs():
    run = Run({M: "byminji/LLaVA-NeXT-7B-Video-FT"}, {"tvbench": ("tvbench", False)}, FIGURES)
    df = compare(tables(), run)
    assert verdict(df, "Table 3", "full accuracy (%)") == "agrees"
    assert verdict(df, "Table 3", "pathway accuracy (%)") == "differs"  # 51.3 vs 51.2: not the searched row's
    assert verdict(df, "Table 3", "kept edges (%)") == "agrees"  # 42.4 rounds to 42
    assert verdict(df, "Table 3", "random accuracy (%)") == "agrees"
    assert verdict(df, "Table 3", "full accuracy (%)", dataset="tomato") == "not run"
    assert verdict(df, "Table 3", "full accuracy (%)", paper_model="videollama3-7b") == "not run"
    assert (
        verdict(df, "Fig. 2", "minimum (%)", "action_antonym") == "agrees"
    )  # -13 vs ~-12, not the control's -80
    assert verdict(df, "Fig. 2", "layer of the minimum", "action_antonym") == "agrees"
    assert verdict(df, "Fig. 2", "minimum (%)", "object_count") == "agrees"
    assert verdict(df, "Fig. 2", "layer of the minimum", "object_count") == "differs"  # 12, the paper: 8
    assert verdict(df, "Fig. 2", "minimum (%)", "scene_transition") == "not run"  # no such panel
    assert verdict(df, "Fig. 9", "true option's peak (%)", "action_antonym") == "agrees"
    assert verdict(df, "Fig. 9", "layer of the peak", "action_antonym") == "agrees"
    assert verdict(df, "Fig. 9", "true option at the last layer (%)", "action_antonym") == "differs"
    assert verdict(df, "Table 2", "accuracy drop (points)", "object_count") == "agrees"
    assert verdict(df, "Table 2", "accuracy drop (relative %)", "object_count") == "differs"
    assert set(df[df.source == "Fig. 3"].verdict) == {"not run"}  # the run drew no Fig. 3
    row = df[(df.source == "Fig. 2") & (df.quantity == "minimum (%)") & (df.task == "action_antonym")].iloc[0]
    assert row.run == -13.0 and row.difference == pytest.approx(-1.0)


def test_another_checkpoint_or_a_generated_benchmark_shows_the_mechanism_not_agreement():
    for models, datasets in (
        ({M: "models/toy-video"}, {"tvbench": ("tvbench", False)}),  # the toy on a real benchmark
        ({M: "byminji/LLaVA-NeXT-7B-Video-FT"}, {"tvbench": ("tvbench", True)}),  # a generated one
    ):
        df = compare(tables(), Run(models, datasets, FIGURES))
        assert verdict(df, "Fig. 2", "minimum (%)", "action_antonym") == "other model or data"
        assert verdict(df, "Fig. 9", "layer of the peak", "action_antonym") == "other model or data"
        assert not df.verdict.isin(["agrees", "differs"]).any()


def test_every_published_number_has_a_row():
    n = published()
    df = compare({}, Run({}, {}, {}))
    assert df.verdict.eq("not run").all()
    per_model_table3 = 3 * 2 + 1  # three settings on two benchmarks, and the kept share
    expected = len(n["table3"]) * per_model_table3 + 2 * 5 + 2 * 5 + 2 * 2 * 5 + 3 * 5
    assert len(df) == expected

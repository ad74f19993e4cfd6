"""End-to-end: the workflow on a reduced default config (2 tasks, 4 questions each), the committed
toy checkpoints, a single-figure rerun without models, and config validation errors."""

import pandas as pd
import pytest
import yaml

from conftest import snakemake, tiny_config
from vlmflow.stats import curve_table

pytestmark = pytest.mark.slow
CONTRACT = ["dataset", "task", "model", "sample_id", "family", "block", "window", "window_style", "layer", "p_base",
            "p_new", "rel_change", "p_base_gt", "p_new_gt", "rel_change_gt", "pred_base", "pred_new", "gt",
            "correct_base", "model_id", "dtype", "attention_backend", "n_frames", "seed", "torch_version",
            "transformers_version"]


def test_outputs_follow_the_results_contract(finished_run):
    w = finished_run
    for fam in ["cross_frame", "vql_to_ql"]:
        df = pd.read_parquet(w / f"results/synthetic/toy-video/knockout/{fam}.parquet")
        assert not set(CONTRACT) - set(df.columns)
        base = pd.concat(pd.read_parquet(p) for p in (w / "results/synthetic/toy-video/baseline").glob("*.parquet"))
        n_blocks = {"cross_frame": 1, "vql_to_ql": 4}[fam]
        assert len(df) == base.correct_base.sum() * n_blocks * 8  # sample x block x layer, correct only
        assert df.correct_base.all() and set(df.layer) == set(range(1, 9))
        assert df.window.eq(3).all() and df.engine.eq("fast").all()
    for stem in ["fig2_cross_frame", "fig3_vql_to_ql"]:
        for ext in ["png", "pdf", "csv"]:
            assert (w / f"figures/{stem}.{ext}").stat().st_size > 0
    acc = pd.read_csv(w / "figures/accuracy.csv")
    assert set(acc.model) == {"toy-video", "toy-image"} and acc.n.eq(4).all()


def test_figure_csv_is_exactly_what_the_tables_give(finished_run):
    df = pd.read_parquet(finished_run / "results/synthetic/toy-video/knockout/vql_to_ql.parquet")
    csv = pd.read_csv(finished_run / "figures/fig3_vql_to_ql.csv")
    expected = curve_table(df, ["task", "block", "layer"])
    pd.testing.assert_frame_equal(csv.reset_index(drop=True), expected.reset_index(drop=True), check_dtype=False)


def test_one_figure_reruns_without_any_model(finished_run):
    for ext in ["png", "pdf", "csv"]:
        (finished_run / f"figures/fig3_vql_to_ql.{ext}").unlink()
    res = snakemake(finished_run, "figures/fig3_vql_to_ql.png")
    assert res.returncode == 0, res.stderr[-3000:]
    log = res.stdout + res.stderr
    assert "rule fig3_vql_to_ql" in log
    for rule in ["cache_features", "rule knockout", "extract_frames"]:
        assert rule not in log
    assert (finished_run / "figures/fig3_vql_to_ql.csv").is_file()


def test_a_wrong_config_value_is_named(tmp_path):
    cfg = tiny_config()
    cfg["knockout"]["engine"] = "fastest"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    res = snakemake(tmp_path, "-n")
    assert res.returncode != 0 and "fastest" in res.stdout + res.stderr
    cfg = tiny_config()
    cfg["knockout"]["windw"] = 9
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    res = snakemake(tmp_path, "-n")
    assert res.returncode != 0 and "windw" in res.stdout + res.stderr

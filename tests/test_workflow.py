"""End-to-end: the workflow on a reduced default config (2 tasks, 4 questions each), the committed
toy checkpoints, a single-figure rerun without models, and config validation errors."""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO, snakemake, tiny_config

import vlmflow
from vlmflow.models.loading import content_hash
from vlmflow.stats import curve_table

pytestmark = pytest.mark.slow
# Every knockout row: what was knocked out where, the probabilities and predictions before and after
# (README, "Results contract"), and every provenance column that vlmflow.provenance stamps.
CONTRACT = [
    "dataset",
    "task",
    "model",
    "sample_id",
    "experiment",
    "block",
    "heads",
    "window",
    "window_style",
    "layer",
    "p_base",
    "p_new",
    "rel_change",
    "p_base_gt",
    "p_new_gt",
    "rel_change_gt",
    "pred_base",
    "pred_new",
    "gt",
    "correct_base",
    "correct_new",
    "model_id",
    "model_revision",
    "dtype",
    "attention_backend",
    "engine",
    "n_frames",
    "frame_sampling",
    "pooling",
    "seed",
    "adapter_settings",
    "torch_version",
    "transformers_version",
    "vlmflow_version",
]
BASELINE = [
    "dataset",
    "task",
    "model",
    "sample_id",
    "gt",
    "pred_base",
    "pred_base_id",
    "p_base",
    "p_base_gt",
    "correct_base",
]


def experiment_table(run: Path, dataset: str, model: str, experiment: str) -> Path:
    """The gathered table of one knockout experiment: knockout/<experiment>/<style>-w<size>.parquet,
    the one sweep the run configures."""
    root = run / "results" / dataset / model / "knockout"
    found = list(root.glob(f"{experiment}/*.parquet"))
    assert len(found) == 1, f"expected one gathered {experiment} table under {root}, found {found}"
    return found[0]


def baseline_table(run: Path, dataset: str, model: str) -> pd.DataFrame:
    tables = sorted((run / f"results/{dataset}/{model}/baseline").glob("*.parquet"))
    return pd.concat([pd.read_parquet(p) for p in tables], ignore_index=True)


def judged(preds, gts) -> list[bool]:
    """The paper's judgement: the decoded token is the correct letter, case and spaces ignored."""
    return [p.strip().lower() == g.lower() for p, g in zip(preds, gts)]


def test_outputs_follow_the_results_contract(finished_run):
    from transformers import AutoTokenizer

    w = finished_run
    base = baseline_table(w, "synthetic", "toy-video")
    assert not set(BASELINE) - set(base.columns)
    # the predicted token: its id, and its decoded text, which is what is judged against the letter
    assert pd.api.types.is_integer_dtype(base.pred_base_id) and pd.api.types.is_string_dtype(base.pred_base)
    tok = AutoTokenizer.from_pretrained(REPO / "models/toy-video")
    ckpt = json.loads((REPO / "models/toy-video/config.json").read_text())
    pooling = "-".join(map(str, ckpt["pooling_shape"]))
    assert base.pred_base.tolist() == [tok.decode([i]) for i in base.pred_base_id]
    assert base.correct_base.tolist() == judged(base.pred_base, base["gt"])
    for fam in ["cross_frame", "vql_to_ql"]:
        df = pd.read_parquet(experiment_table(w, "synthetic", "toy-video", fam))
        assert not set(CONTRACT) - set(df.columns), set(CONTRACT) - set(df.columns)
        n_blocks = {"cross_frame": 1, "vql_to_ql": 4}[fam]
        # sample x block x layer, correct only; each block also as its matched random-edge control
        assert len(df) == base.correct_base.sum() * n_blocks * 8 * 2
        assert df.control.sum() == len(df) // 2 and df[df.control].block.str.endswith(" (random edges)").all()
        assert df.correct_base.all() and set(df.layer) == set(range(1, 9))
        assert df.window.eq(3).all() and df.window_style.eq("center").all()
        # the baseline prediction is carried over as text; correct_new judges pred_new the same way
        assert df.pred_base.tolist() == df.sample_id.map(base.set_index("sample_id").pred_base).tolist()
        assert df.correct_new.tolist() == judged(df.pred_new, df["gt"])
        # provenance: the configured engine, the checkpoint's pooling grid and content hash, this package
        assert df.engine.eq("fast").all() and df.pooling.eq(pooling).all()
        assert df.model_revision.eq(content_hash((REPO / "models/toy-video").resolve())).all()
        assert df.vlmflow_version.eq(vlmflow.__version__).all() and df.n_frames.eq(8).all()
    for stem in ["fig2_cross_frame", "fig3_vql_to_ql"]:
        for ext in ["png", "pdf", "csv"]:
            assert (w / f"figures/{stem}.{ext}").stat().st_size > 0
    acc = pd.read_csv(w / "figures/accuracy.csv")
    assert set(acc.model) == {"toy-video", "toy-image"} and acc.n.eq(4).all()


def test_model_jobs_log_each_samples_length_and_their_peak_memory(finished_run):
    """Knockout, probe, attention-map and pathway jobs name each sample's token count and end with
    their peak memory (process, engine masks and working set)."""
    logs = finished_run / "logs"
    for stage in ("knockout", "probes", "attention_maps", "pathways", "open_ended_flow"):
        found = sorted((logs / stage).rglob("*.log"))
        assert found, f"no {stage} logs under {logs}"
        texts = [f.read_text() for f in found]
        assert any(re.search(r"sample \d+/\d+ \((\w+, )?\d+ tokens\)", x) for x in texts), stage
        peak = r"peak memory: process \d+ MiB, .*engine masks [\d.]+ MiB \(with attention scores [\d.]+ MiB\)"
        assert all(re.search(peak, x) for x in texts), (stage, texts[0][-1500:])


def test_table2_failure_cases_and_open_ended_accuracy(finished_run):
    w = finished_run
    for stem in [
        "fig7_question_options_to_last",
        "fig8_vq_to_true_option",
        "figS_failure_cases",
        "table2_early_cross_frame",
    ]:
        for ext in ["png", "pdf", "csv"]:
            assert (w / f"figures/{stem}.{ext}").stat().st_size > 0, stem
    answers = pd.concat(
        [pd.read_parquet(p) for p in sorted((w / "results/synthetic/toy-video/answers").glob("*.parquet"))]
    )
    base = baseline_table(w, "synthetic", "toy-video")
    assert sorted(answers.sample_id) == sorted(base.sample_id)  # every sample, not only correct ones
    assert (
        answers.correct_before.tolist()
        == answers.sample_id.map(base.set_index("sample_id").correct_base).tolist()
    )
    assert answers.blocked_layers.eq("1-4").all()  # the first half of 8 layers
    t2 = pd.read_csv(w / "figures/table2_early_cross_frame.csv")
    row = t2[(t2.model == "toy-video") & (t2.task == "action_sequence")].iloc[0]
    sub = answers[answers.task == "action_sequence"]
    assert row.mc_after == pytest.approx(100 * sub.correct_after.mean())
    assert row.exact_before == pytest.approx(100 * sub.exact_before.mean())
    oe = pd.read_csv(w / "figures/accuracy_open_ended.csv")
    assert list(oe.columns) == ["dataset", "model", "task", "n", "first_token_accuracy", "exact_match"]
    assert set(oe.model) == {"toy-video", "toy-image"} and oe.n.eq(4).all()
    assert (w / "figures/table2_early_cross_frame_examples.csv").is_file()
    # the failure cases knock out the wrongly answered samples' predicted option
    wrong = pd.read_parquet(
        w / "results/synthetic/toy-image/knockout/vq_to_false_opt/center-w3-wrong.parquet"
    )
    image_base = baseline_table(w, "synthetic", "toy-image")
    assert len(wrong) and (~wrong.correct_base).all()
    assert set(wrong.sample_id) <= set(image_base[~image_base.correct_base].sample_id)
    assert set(wrong.block) >= {"Video -> False option", "Non-option question -> False option"}
    fig = pd.read_csv(w / "figures/figS_failure_cases.csv")
    assert set(fig.samples) == {"wrong", "correct"}


def test_figure_csv_is_exactly_what_the_tables_give(finished_run):
    df = pd.read_parquet(experiment_table(finished_run, "synthetic", "toy-video", "vql_to_ql"))
    csv = pd.read_csv(finished_run / "figures/fig3_vql_to_ql.csv")
    expected = curve_table(df, ["task", "block", "layer"])
    pd.testing.assert_frame_equal(
        csv.reset_index(drop=True), expected.reset_index(drop=True), check_dtype=False
    )


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


def test_the_open_ended_flow_draws_its_figure_from_the_toys_answers(finished_run):
    w = finished_run
    for ext in ["png", "pdf", "csv"]:
        assert (w / f"figures/figS_open_ended.{ext}").stat().st_size > 0
    answers = pd.read_csv(w / "figures/figS_open_ended_responses.csv")
    assert len(answers) == 3 and answers.kept_anchors.eq("[1, 2, 3]").all()
    rows = pd.read_parquet(
        w / "results/synthetic-open/toy-video/open_ended_flow/center-w3/temporal_qa.parquet"
    )
    fig = pd.read_csv(w / "figures/figS_open_ended.csv")
    assert set(fig.selection) == {"the paper's selection", "before its <= 0 filter"}
    unfiltered = fig[fig.selection == "before its <= 0 filter"]
    expected = curve_table(rows, ["block", "anchor", "layer"])
    assert np.allclose(unfiltered["mean"].to_numpy(), expected["mean"].to_numpy())
    assert unfiltered.n.eq(3).all()


def test_the_paper_comparison_puts_the_toys_numbers_beside_the_papers(finished_run):
    t = pd.read_csv(finished_run / "figures/paper_comparison.csv")
    # the toy on a generated benchmark: the mechanism, never agreement; Table 3 names the paper's models
    assert set(t.verdict) == {"other model or data", "not run"}
    assert t[t.source == "Table 3"].verdict.eq("not run").all()
    fig3 = pd.read_csv(finished_run / "figures/fig3_vql_to_ql.csv")
    vq = fig3[(fig3.block == "Video -> Question") & (fig3.task == "action_sequence")]
    row = t[(t.quantity == "Video -> Question: minimum (%)") & (t.task == "action_sequence")].iloc[0]
    assert row.run == pytest.approx(vq["mean"].min()) and row.run_model == "toy-video"
    assert row.verdict == "other model or data"
    # tasks outside the reduced run's two are not run
    assert t[(t.source == "Fig. 3") & (t.task == "object_count")].verdict.eq("not run").all()

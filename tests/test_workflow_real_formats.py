"""End-to-end on the paper's formats: a PLLaVA-format Video-FT checkpoint and a llava-hf LLaVA-NeXT
base (tiny, random weights) on TVBench- and TOMATO-format fixture trees with real mp4 files, through
every knockout experiment, both figures and the skipped-sample record."""

from dataclasses import replace
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
import yaml
from conftest import write_tomato_fixture, write_tvbench_fixture
from test_workflow import CONTRACT, experiment_table, snakemake

pytestmark = pytest.mark.slow
EXPERIMENTS = ["cross_frame", "vql_to_ql", "question_and_options_to_last", "vq_to_true_opt"]


def fixture_config(work, pllava, llava_next) -> dict:
    model = dict(family="llava_video", pooling_shape=[8, 2, 2], window=2, chunks=2)
    return {
        "seed": 0,
        "n_frames": 8,
        "datasets": {
            "tvbench": dict(
                format="tvbench",
                root=str(write_tvbench_fixture(work / "data/TVBench")),
                tasks=["action_sequence", "moving_direction"],
            ),
            "tomato": dict(
                format="tomato",
                root=str(write_tomato_fixture(work / "data/TOMATO")),
                tasks=["count", "shape&trend"],
            ),
        },
        "models": {
            "video-ft": dict(model, path=str(pllava)),
            "image-base": dict(model, path=str(llava_next)),
        },
        "runs": [
            dict(dataset="tvbench", models=["video-ft"], experiments=EXPERIMENTS),
            dict(dataset="tvbench", models=["image-base"], experiments=["cross_frame"]),
            dict(dataset="tomato", models=["video-ft"], experiments=["vql_to_ql"]),
        ],
        # random weights answer at chance: analyse every sample, not only the correct ones
        "knockout": dict(
            engine="fast", attention_backend="sdpa", window_style="center", sample_mode="all", batch_size=8
        ),
        "figures": {
            "fig2_cross_frame": dict(dataset="tvbench", model="video-ft", image_model="image-base"),
            "fig3_vql_to_ql": dict(dataset="tvbench", model="video-ft"),
        },
    }


@pytest.fixture(scope="module")
def fixture_run(tmp_path_factory, pllava_checkpoint, llava_next_checkpoint):
    work = tmp_path_factory.mktemp("real-formats")
    (work / "config.yaml").write_text(
        yaml.safe_dump(fixture_config(work, pllava_checkpoint, llava_next_checkpoint))
    )
    res = snakemake(work)
    assert res.returncode == 0, res.stderr[-4000:]
    return work


def test_every_experiment_runs_on_the_pllava_checkpoint(fixture_run):
    base = pd.concat(
        pd.read_parquet(p) for p in (fixture_run / "results/tvbench/video-ft/baseline").glob("*.parquet")
    )
    assert len(base) == 6  # 3 + 3 good questions; the bad ones are in skipped.parquet
    for fam in EXPERIMENTS:
        df = pd.read_parquet(experiment_table(fixture_run, "tvbench", "video-ft", fam))
        assert not set(CONTRACT) - set(df.columns)
        assert set(df.sample_id) == set(base.sample_id) and set(df.layer) == {1, 2, 3, 4}
        assert df.pooling.eq("8-2-2").all() and df.rel_change.notna().all()


@pytest.mark.parametrize("experiment", ["cross_frame", "vq_to_true_opt"])
def test_two_parts_per_task_give_the_rows_of_one_job(fixture_run, tmp_path, experiment):
    """The workflow splits each task into two parts (`chunks: 2`); gathered in order, their rows are
    exactly those of one job over the whole task, run here in-process with the workflow's inputs and
    the job record the settings give (the same `KnockoutJob.of` as the rule's params)."""
    from vlmflow.jobs import Job
    from vlmflow.models.loading import load_from_config
    from vlmflow.settings import read_config
    from vlmflow.stages.knockout import KnockoutJob, Sweep, run_experiment

    s = read_config(yaml.safe_load((fixture_run / "config.yaml").read_text()))
    model = s.models["video-ft"]
    assert model.resources.chunks == 2
    # the model's jobs hold no GPU (gpu: 0), so the workflow ran them on the CPU with one thread
    adapter = load_from_config(replace(model.load, device="cpu"), "video-ft")
    table = pd.read_parquet(experiment_table(fixture_run, "tvbench", "video-ft", experiment))
    sweep = Sweep.name(s.knockout.window_style, model.window, s.knockout.sample_mode, s.knockout.sample_mode)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for task in s.datasets["tvbench"].tasks:
            logs = fixture_run / f"logs/knockout/tvbench/video-ft/{experiment}/{sweep}/{task}"
            assert sorted(p.name for p in logs.glob("*.log")) == ["1of2.log", "2of2.log"]
            assert all("sample 1/" in p.read_text() for p in logs.glob("*.log"))  # both parts held samples
            wc = SimpleNamespace(
                dataset="tvbench", model="video-ft", experiment=experiment, sweep=sweep, task=task
            )
            settings = KnockoutJob.of(s, SimpleNamespace(**vars(wc), part="1of1"))
            r = fixture_run / "results/tvbench"
            inputs = dict(
                questions=r / f"questions/{task}.parquet",
                features=r / f"video-ft/features/{task}.pt",
                baseline=r / f"video-ft/baseline/{task}.parquet",
                frames=r / f"frames/{task}.npz",
            )
            one_job = tmp_path / f"{experiment}-{task}.parquet"
            run_experiment(adapter, Job(settings, inputs, dict(table=one_job), "tvbench", "video-ft", task))
            expected = pd.read_parquet(one_job)
            assert expected.sample_id.nunique() == 3  # every good question of the task, split 1 + 2
            gathered = table[table.task == task].reset_index(drop=True)
            pd.testing.assert_frame_equal(gathered, expected)
    finally:
        torch.set_num_threads(threads)


def test_tomato_and_the_image_base_run(fixture_run):
    tom = pd.read_parquet(experiment_table(fixture_run, "tomato", "video-ft", "vql_to_ql"))
    assert set(tom.task) == {"count", "shape&trend"} and tom.sample_id.nunique() == 6
    img = pd.read_parquet(experiment_table(fixture_run, "tvbench", "image-base", "cross_frame"))
    assert img.sample_id.nunique() == 6
    for ext in ["png", "pdf", "csv"]:
        assert (fixture_run / f"figures/fig2_cross_frame.{ext}").stat().st_size > 0
    acc = pd.read_csv(fixture_run / "figures/accuracy.csv")
    assert set(zip(acc.dataset, acc.model)) == {
        ("tvbench", "video-ft"),
        ("tvbench", "image-base"),
        ("tomato", "video-ft"),
    }


def test_bad_samples_are_recorded_with_their_reason(fixture_run):
    tvb = (
        pd.read_parquet(fixture_run / "results/tvbench/video-ft/skipped.parquet")
        .set_index("sample_id")
        .reason
    )
    assert "video not found" in tvb["moving_direction_0003"]
    assert "cannot decode" in tvb["moving_direction_0004"]
    assert "not among the candidates" in tvb["moving_direction_0005"]
    tom = (
        pd.read_parquet(fixture_run / "results/tomato/video-ft/skipped.parquet").set_index("sample_id").reason
    )
    assert set(tom.index) == {"count_3", "shape&trend_3"} and tom.str.contains("not an index").all()

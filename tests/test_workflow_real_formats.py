"""End-to-end on the paper's formats: a PLLaVA-format Video-FT checkpoint and a llava-hf LLaVA-NeXT
base (tiny, random weights) on TVBench- and TOMATO-format fixture trees with real mp4 files, through
every knockout family, both figures and the skipped-sample record."""

import pandas as pd
import pytest
import torch
import yaml
from conftest import write_tomato_fixture, write_tvbench_fixture
from test_workflow import CONTRACT, family_table, snakemake

pytestmark = pytest.mark.slow
FAMILIES = ["cross_frame", "vql_to_ql", "question_and_options_to_last", "vq_to_true_opt"]


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
            dict(dataset="tvbench", models=["video-ft"], families=FAMILIES),
            dict(dataset="tvbench", models=["image-base"], families=["cross_frame"]),
            dict(dataset="tomato", models=["video-ft"], families=["vql_to_ql"]),
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


def test_every_family_runs_on_the_pllava_checkpoint(fixture_run):
    base = pd.concat(
        pd.read_parquet(p) for p in (fixture_run / "results/tvbench/video-ft/baseline").glob("*.parquet")
    )
    assert len(base) == 6  # 3 + 3 good questions; the bad ones are in skipped.parquet
    for fam in FAMILIES:
        df = pd.read_parquet(family_table(fixture_run, "tvbench", "video-ft", fam))
        assert not set(CONTRACT) - set(df.columns)
        assert set(df.sample_id) == set(base.sample_id) and set(df.layer) == {1, 2, 3, 4}
        assert df.pooling.eq("8-2-2").all() and df.rel_change.notna().all()


def _chunk_files(run, dataset, model, family, task):
    """The per-part tables of one task, in part order (found wherever the layout nests them)."""
    root = run / "results" / dataset / model / "knockout"
    found = sorted(root.glob(f"{family}/**/{task}/*of*.parquet"), key=lambda p: int(p.stem.split("of")[0]))
    assert found, f"no part tables of {family}/{task} under {root}"
    return found


@pytest.mark.parametrize("family", ["cross_frame", "vq_to_true_opt"])
def test_two_parts_per_task_give_the_rows_of_one_job(fixture_run, tmp_path, family):
    """The workflow splits each task into two parts (`chunks: 2`); gathered in order, their rows are
    exactly those of one job over the whole task, run here in-process with the workflow's inputs,
    model and settings."""
    from vlmflow.models.loading import load_from_config, model_provenance
    from vlmflow.stages.knockout import run_family

    cfg = yaml.safe_load((fixture_run / "config.yaml").read_text())
    model, ko = cfg["models"]["video-ft"], cfg["knockout"]
    # the model's jobs hold no GPU (gpu: 0), so the workflow ran them on the CPU with one thread
    adapter = load_from_config({**model, "device": "cpu"}, "video-ft")
    table = pd.read_parquet(family_table(fixture_run, "tvbench", "video-ft", family))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for task in cfg["datasets"]["tvbench"]["tasks"]:
            parts = _chunk_files(fixture_run, "tvbench", "video-ft", family, task)
            assert [p.name for p in parts] == ["1of2.parquet", "2of2.parquet"]
            r = fixture_run / "results/tvbench"
            one_job = tmp_path / f"{family}-{task}.parquet"
            run_family(
                adapter,
                dataset="tvbench",
                model_name="video-ft",
                family=family,
                questions_path=r / f"questions/{task}.parquet",
                features_path=r / f"video-ft/features/{task}.pt",
                baseline_path=r / f"video-ft/baseline/{task}.parquet",
                frames_path=r / f"frames/{task}.npz",
                window=model["window"],
                window_style=ko["window_style"],
                engine=ko["engine"],
                backend=ko["attention_backend"],
                sample_mode=ko["sample_mode"],
                batch_size=ko["batch_size"],
                provenance=model_provenance(adapter, model, ko, cfg["n_frames"], cfg["seed"]),
                out=one_job,
                part=(0, 1),
                random_control=ko.get("random_control", True),
                seed=cfg["seed"],
            )
            expected = pd.read_parquet(one_job)
            assert expected.sample_id.nunique() == 3  # every good question of the task, split 1 + 2
            gathered = table[table.task == task].reset_index(drop=True)
            pd.testing.assert_frame_equal(gathered, expected)
            chunks = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
            pd.testing.assert_frame_equal(chunks, expected)
            assert all(len(pd.read_parquet(p)) for p in parts)  # both parts hold samples
    finally:
        torch.set_num_threads(threads)


def test_tomato_and_the_image_base_run(fixture_run):
    tom = pd.read_parquet(family_table(fixture_run, "tomato", "video-ft", "vql_to_ql"))
    assert set(tom.task) == {"count", "shape&trend"} and tom.sample_id.nunique() == 6
    img = pd.read_parquet(family_table(fixture_run, "tvbench", "image-base", "cross_frame"))
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

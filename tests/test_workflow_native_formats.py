"""End-to-end on a transformers-native family: a llava-hf LLaVA-NeXT-Video checkpoint (tiny, random
weights) beside its image-stage counterpart (a llava-hf LLaVA-NeXT image model, the llava_video
family) on a TVBench-format fixture tree, through every knockout experiment and Figs. 2 and 3."""

import pandas as pd
import pytest
import yaml
from conftest import write_tvbench_fixture
from test_workflow import CONTRACT, experiment_table, snakemake

pytestmark = pytest.mark.slow
EXPERIMENTS = ["cross_frame", "vql_to_ql", "question_and_options_to_last", "vq_to_true_opt"]


@pytest.fixture(scope="module")
def native_run(tmp_path_factory, llava_next_video_checkpoint, llava_next_checkpoint):
    work = tmp_path_factory.mktemp("native-formats")
    config = {
        "seed": 0,
        "n_frames": 8,
        "datasets": {
            "tvbench": dict(
                format="tvbench",
                root=str(write_tvbench_fixture(work / "data/TVBench")),
                tasks=["action_sequence", "moving_direction"],
            )
        },
        "models": {
            "next-video": dict(family="llava_next_video", path=str(llava_next_video_checkpoint), window=2),
            "next-image": dict(
                family="llava_video", path=str(llava_next_checkpoint), pooling_shape=[8, 2, 2], window=2
            ),
        },
        "runs": [
            dict(dataset="tvbench", models=["next-video"], experiments=EXPERIMENTS),
            dict(dataset="tvbench", models=["next-image"], experiments=["cross_frame"]),
        ],
        # random weights answer at chance: analyse every sample, not only the correct ones
        "knockout": dict(
            engine="fast", attention_backend="sdpa", window_style="center", sample_mode="all", batch_size=8
        ),
        "figures": {
            "fig2_cross_frame": dict(dataset="tvbench", model="next-video", image_model="next-image"),
            "fig3_vql_to_ql": dict(dataset="tvbench", model="next-video"),
        },
    }
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    res = snakemake(work)
    assert res.returncode == 0, res.stderr[-4000:]
    return work


def test_every_experiment_runs_on_the_native_checkpoint(native_run):
    base = pd.concat(
        pd.read_parquet(p) for p in (native_run / "results/tvbench/next-video/baseline").glob("*.parquet")
    )
    assert len(base) == 6  # 3 + 3 good questions; the bad ones are in skipped.parquet
    for fam in EXPERIMENTS:
        df = pd.read_parquet(experiment_table(native_run, "tvbench", "next-video", fam))
        assert not set(CONTRACT) - set(df.columns)
        assert set(df.sample_id) == set(base.sample_id) and set(df.layer) == {1, 2, 3, 4}
        assert df.model_id.str.endswith("tiny-llava-next-video").all() and df.rel_change.notna().all()
        assert df.pooling.eq("8-2-2").all()


def test_figs_2_and_3_pair_the_video_model_with_its_image_counterpart(native_run):
    fig2 = pd.read_csv(native_run / "figures/fig2_cross_frame.csv")
    assert {"next-video", "next-image"} <= set(fig2.astype(str).stack())
    for name in ["fig2_cross_frame", "fig3_vql_to_ql"]:
        for ext in ["png", "pdf", "csv"]:
            assert (native_run / f"figures/{name}.{ext}").stat().st_size > 0

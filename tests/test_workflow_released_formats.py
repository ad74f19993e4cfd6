"""End-to-end on the other two model families: a Mini-InternVL Video-FT and its image base, and a
VideoLLaMA3 (tiny random checkpoints in their released formats) on a TVBench-format fixture tree
with real mp4 files, through every knockout experiment, Fig. 2 with two model pairs (InternVL's and
LLaVA's) and Fig. 3."""

import json

import pandas as pd
import pytest
import torch
import yaml
from conftest import write_tvbench_fixture
from test_workflow import CONTRACT, experiment_table, snakemake

pytestmark = pytest.mark.slow
EXPERIMENTS = ["cross_frame", "vql_to_ql", "question_and_options_to_last", "vq_to_true_opt"]


@pytest.fixture(scope="module")
def released_run(
    tmp_path_factory, internvl_checkpoint, videollama3_checkpoint, pllava_checkpoint, llava_next_checkpoint
):
    from vlmflow.testing.checkpoints import write_internvl

    work = tmp_path_factory.mktemp("released-formats")
    base = write_internvl(work / "tiny-internvl-base", seed=1, dtype=torch.float32)
    common = dict(window=2, pooling_shape=[8, 2, 2])
    cfg = {
        "seed": 0,
        "n_frames": 8,
        "datasets": {
            "tvbench": dict(
                format="tvbench",
                root=str(write_tvbench_fixture(work / "data/TVBench")),
                tasks=["moving_direction"],
            )
        },
        "models": {
            "llava-ft": dict(common, family="llava_video", path=str(pllava_checkpoint)),
            "llava-base": dict(common, family="llava_video", path=str(llava_next_checkpoint)),
            "internvl-ft": dict(common, family="internvl", path=str(internvl_checkpoint)),
            "internvl-base": dict(common, family="internvl", path=str(base)),
            "videollama3": dict(common, family="videollama3", path=str(videollama3_checkpoint)),
        },
        "runs": [
            dict(dataset="tvbench", models=["internvl-ft", "videollama3"], experiments=EXPERIMENTS),
            dict(
                dataset="tvbench",
                models=["internvl-base", "llava-ft", "llava-base"],
                experiments=["cross_frame"],
            ),
        ],
        # random weights answer at chance: analyse every sample
        "knockout": dict(
            engine="fast", attention_backend="sdpa", window_style="center", sample_mode="all", batch_size=8
        ),
        "figures": {
            "fig2_cross_frame": dict(
                dataset="tvbench",
                model=["internvl-ft", "llava-ft"],
                image_model=["internvl-base", "llava-base"],
            ),
            "fig3_vql_to_ql": dict(dataset="tvbench", model="videollama3"),
        },
    }
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    res = snakemake(work)
    assert res.returncode == 0, res.stderr[-4000:]
    return work


@pytest.mark.parametrize("model", ["internvl-ft", "videollama3"])
def test_every_experiment_runs_on_the_released_format(released_run, model):
    base = pd.read_parquet(released_run / f"results/tvbench/{model}/baseline/moving_direction.parquet")
    assert len(base) == 3  # the three good questions of the fixture task
    for fam in EXPERIMENTS:
        df = pd.read_parquet(experiment_table(released_run, "tvbench", model, fam))
        assert not set(CONTRACT) - set(df.columns)
        assert set(df.sample_id) == set(base.sample_id) and set(df.layer) == {1, 2, 3, 4}
        assert df.pooling.eq("8-2-2").all() and df.rel_change.notna().all()
        settings = {json.loads(s).get("vision_attention") for s in df.adapter_settings}
        assert settings == ({"released_eager"} if model == "videollama3" else {None})


def test_figures_2_and_3_come_out(released_run):
    for name in ("fig2_cross_frame", "fig3_vql_to_ql"):
        for ext in ("png", "pdf", "csv"):
            assert (released_run / f"figures/{name}.{ext}").stat().st_size > 0
    fig2 = pd.read_csv(released_run / "figures/fig2_cross_frame.csv")
    labels = {"internvl-ft", "internvl-base", "llava-ft", "llava-base"}
    assert labels <= set(fig2.model_label)  # both pairs, each with its image base

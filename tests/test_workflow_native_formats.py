"""End-to-end on the transformers-native families: llava-hf LLaVA-NeXT-Video and LLaVA-OneVision
checkpoints, an InternVL3 `-hf` one (with its frames' marker text), Qwen2.5-VL and Qwen3-VL ones
(DeepStack kept and dropped, Qwen3-VL's own frame rule; tiny, random weights), the
LLaVAs each beside its image-stage counterpart (a llava-hf LLaVA-NeXT image model, the llava_video
family; a second OneVision checkpoint), on a TVBench-format fixture tree, through every knockout
experiment and Figs. 2 and 3; OneVision also on the hub processor's frames."""

import json

import pandas as pd
import pytest
import yaml
from conftest import write_tvbench_fixture
from test_workflow import CONTRACT, experiment_table, snakemake

pytestmark = pytest.mark.slow
EXPERIMENTS = ["cross_frame", "vql_to_ql", "question_and_options_to_last", "vq_to_true_opt"]


@pytest.fixture(scope="module")
def native_run(
    tmp_path_factory,
    llava_next_video_checkpoint,
    llava_next_checkpoint,
    llava_onevision_checkpoint,
    internvl_hf_checkpoint,
    qwen2_5_vl_checkpoint,
    qwen3_vl_checkpoint,
):
    from vlmflow.testing.checkpoints import write_llava_onevision

    work = tmp_path_factory.mktemp("native-formats")
    onevision_si = write_llava_onevision(work / "tiny-llava-onevision-si", seed=4)
    tvbench = dict(
        format="tvbench",
        root=str(write_tvbench_fixture(work / "data/TVBench")),
        tasks=["action_sequence", "moving_direction"],
    )
    config = {
        "seed": 0,
        "n_frames": 8,
        "datasets": {
            "tvbench": tvbench,
            "tvbench-hf": dict(tvbench, frame_sampling="hf_uniform"),
            "tvbench-16": dict(tvbench, n_frames=16),  # Qwen2.5-VL: 8 temporal groups of 2 frames
            "tvbench-fps2": dict(tvbench, frame_sampling="fps2", n_frames=16),  # Qwen3-VL's own rule
        },
        "models": {
            "next-video": dict(family="llava_next_video", path=str(llava_next_video_checkpoint), window=2),
            "next-image": dict(
                family="llava_video", path=str(llava_next_checkpoint), pooling_shape=[8, 2, 2], window=2
            ),
            "ov-video": dict(family="llava_onevision", path=str(llava_onevision_checkpoint), window=2),
            "ov-image": dict(family="llava_onevision", path=str(onevision_si), window=2),
            "qwen": dict(family="qwen2_5_vl", path=str(qwen2_5_vl_checkpoint), window=2),
            "qwen3": dict(family="qwen3_vl", path=str(qwen3_vl_checkpoint), window=2),
            "qwen3-drop": dict(
                family="qwen3_vl",
                path=str(qwen3_vl_checkpoint),
                deepstack="drop",
                frame_ranges="markers",
                window=2,
            ),
            "internvl-hf": dict(
                family="internvl_hf", path=str(internvl_hf_checkpoint), frame_ranges="markers", window=2
            ),
        },
        "runs": [
            dict(
                dataset="tvbench", models=["next-video", "ov-video", "internvl-hf"], experiments=EXPERIMENTS
            ),
            dict(dataset="tvbench", models=["next-image", "ov-image"], experiments=["cross_frame"]),
            dict(dataset="tvbench-hf", models=["ov-video"], experiments=["cross_frame"]),
            dict(dataset="tvbench", models=["qwen"], experiments=EXPERIMENTS),
            dict(dataset="tvbench-16", models=["qwen"], experiments=["cross_frame"]),
            dict(dataset="tvbench", models=["qwen3"], experiments=EXPERIMENTS),
            dict(dataset="tvbench-fps2", models=["qwen3", "qwen3-drop"], experiments=["cross_frame"]),
        ],
        # random weights answer at chance: analyse every sample, not only the correct ones
        "knockout": dict(
            engine="fast", attention_backend="sdpa", window_style="center", sample_mode="all", batch_size=8
        ),
        "figures": {
            "fig2_cross_frame": dict(
                dataset="tvbench", model=["next-video", "ov-video"], image_model=["next-image", "ov-image"]
            ),
            "fig3_vql_to_ql": dict(dataset="tvbench", model="next-video"),
        },
    }
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    res = snakemake(work)
    assert res.returncode == 0, res.stderr[-4000:]
    return work


def baseline(run, dataset, model):
    return pd.concat(
        pd.read_parquet(p) for p in (run / f"results/{dataset}/{model}/baseline").glob("*.parquet")
    )


@pytest.mark.parametrize(
    "model,name,pooling",
    [
        ("next-video", "llava-next-video", "8-2-2"),
        ("ov-video", "llava-onevision", "8-3-3"),
        ("internvl-hf", "internvl-hf", "8-2-2"),
        ("qwen", "qwen2.5-vl", "4-2-3"),  # 40 x 64 frames -> 56 x 84 px: 2 x 3 tokens
        ("qwen3", "qwen3-vl", "4-1-2"),  # 40 x 64 frames -> 32 x 64 px: 1 x 2 tokens
    ],
)
def test_every_experiment_runs_on_the_native_checkpoint(native_run, model, name, pooling):
    base = baseline(native_run, "tvbench", model)
    assert len(base) == 6  # 3 + 3 good questions; the bad ones are in skipped.parquet
    for fam in EXPERIMENTS:
        df = pd.read_parquet(experiment_table(native_run, "tvbench", model, fam))
        assert not set(CONTRACT) - set(df.columns)
        assert set(df.sample_id) == set(base.sample_id) and set(df.layer) == {1, 2, 3, 4}
        assert df.model_id.str.endswith(f"tiny-{name}").all() and df.rel_change.notna().all()
        assert df.pooling.eq(pooling).all()
    if model == "internvl-hf":
        assert df.adapter_settings.map(json.loads).eq({"frame_ranges": "markers"}).all()


def test_sixteen_frames_give_qwen_eight_temporal_groups(native_run):
    df = pd.read_parquet(experiment_table(native_run, "tvbench-16", "qwen", "cross_frame"))
    assert df.pooling.eq("8-2-3").all() and df.n_frames.eq(16).all()
    assert df.adapter_settings.map(json.loads).eq({"text_after_video": "start+max(h,w)"}).all()


def test_qwen3_vl_on_its_own_frame_rule_with_deepstack_kept_and_dropped(native_run):
    """fps2: 2 frames per second of each clip (the 3 s videos give 6 frames, 3 groups; the 2 s
    clips of action_sequence 4, 2 groups), so the grid is per sample; the DeepStack switch and the
    frame ranges are recorded in every row, and dropping DeepStack changes the answers."""
    kept, dropped = (
        pd.read_parquet(experiment_table(native_run, "tvbench-fps2", m, "cross_frame"))
        for m in ("qwen3", "qwen3-drop")
    )
    groups = kept.groupby("task").pooling.unique().map(list).to_dict()
    assert groups == {"moving_direction": ["3-1-2"], "action_sequence": ["2-1-2"]}
    assert kept.frame_sampling.eq("fps2").all()
    settings = {"qwen3": kept, "qwen3-drop": dropped}
    want = {"qwen3": "keep", "qwen3-drop": "drop"}
    for m, df in settings.items():
        assert df.adapter_settings.map(json.loads).map(lambda s: s["deepstack"]).eq(want[m]).all()
    assert dropped.adapter_settings.map(json.loads).map(lambda s: s["frame_ranges"]).eq("markers").all()
    b_kept, b_dropped = (baseline(native_run, "tvbench-fps2", m).set_index("sample_id") for m in want)
    assert (b_kept.p_base_gt / b_dropped.loc[b_kept.index].p_base_gt - 1).abs().max() > 1e-3


def test_the_hub_processors_frame_rule_gives_other_frames(native_run):
    """The same questions on the hub processor's frames (hf_uniform): recorded, and other answers."""
    ours, hub = (
        baseline(native_run, d, "ov-video").set_index("sample_id") for d in ("tvbench", "tvbench-hf")
    )
    assert set(hub.index) == set(ours.index)
    assert (hub.p_base_gt / ours.loc[hub.index].p_base_gt - 1).abs().max() > 1e-3  # other frames
    for dataset, rule in (("tvbench", "segments"), ("tvbench-hf", "hf_uniform")):
        df = pd.read_parquet(experiment_table(native_run, dataset, "ov-video", "cross_frame"))
        assert df.frame_sampling.eq(rule).all()


def test_figs_2_and_3_pair_the_video_model_with_its_image_counterpart(native_run):
    fig2 = pd.read_csv(native_run / "figures/fig2_cross_frame.csv")
    assert {"next-video", "next-image", "ov-video", "ov-image"} <= set(fig2.astype(str).stack())
    for name in ["fig2_cross_frame", "fig3_vql_to_ql"]:
        for ext in ["png", "pdf", "csv"]:
            assert (native_run / f"figures/{name}.{ext}").stat().st_size > 0

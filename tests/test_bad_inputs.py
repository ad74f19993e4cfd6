"""What a new user's own data, config and checkpoints can get wrong, each met with a clear error or
a recorded skip: a figure field left out, a clip shorter than the frames asked, a question written
twice, NaN probabilities, broken checkpoint files, a full disk, two runs in one directory."""

import errno
import json
import os
import re
import shutil
import subprocess
import time

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import REPO, snakemake, snakemake_cmd, synthetic_sample
from test_custom_config import OWN, dry_run, job_counts

from vlmflow import io
from vlmflow.data import synthetic
from vlmflow.data.frames import ShortClip, read_frames
from vlmflow.jobs import Job
from vlmflow.models.base import NonFinite
from vlmflow.models.loading import load_from_config
from vlmflow.plots import fig2_cross_frame
from vlmflow.settings import ModelLoad
from vlmflow.stages.features import FeaturesJob, cache_task
from vlmflow.stages.frames import FramesJob, extract_task


# --- figures -------------------------------------------------------------------------------------
def test_fig2_without_an_image_base_plans_the_videollm_alone(tmp_path):
    own = {**OWN, "experiments": {}}
    own["runs"] = [{"dataset": "mine", "models": ["my-model"], "experiments": ["cross_frame"]}]
    own["figures"] = {"fig2_cross_frame": {"dataset": "mine", "model": "my-model"}}
    res = dry_run(tmp_path, own)
    assert res.returncode == 0, res.stderr[-3000:]
    jobs = job_counts(res.stdout)
    assert jobs["fig2_cross_frame"] == 1 and jobs["knockout"] == 1


def test_fig2_draws_a_videollm_without_its_image_base(tmp_path):
    rng = np.random.default_rng(0)
    rows = pd.DataFrame(
        dict(
            task="action_sequence",
            sample_id=[f"s{i}" for i in range(3) for _ in range(4)],
            layer=[1, 2, 3, 4] * 3,
            rel_change=rng.normal(-10, 3, 12),
            control=False,
        )
    )
    table = fig2_cross_frame([(rows, None, ("my-model", None))], tmp_path / "fig2", ["action_sequence"], {})
    assert set(table.model_label) == {"my-model"} and len(table) == 4
    assert (tmp_path / "fig2.png").is_file() and (tmp_path / "fig2.csv").is_file()


# --- the data ------------------------------------------------------------------------------------
def write_task(root, entries, n_frames: dict):
    """A TVBench task "t" with the entries given and a noise video per file name (its frame count)."""
    rng = np.random.default_rng(0)
    for name, n in n_frames.items():
        video = rng.integers(0, 255, (n, 32, 32, 3), dtype=np.uint8)
        synthetic.write_video(root / "video" / "t" / name, video)
    (root / "json").mkdir(parents=True)
    (root / "json" / "t.json").write_text(json.dumps(entries))


def extract(root, out, short_clips="skip"):
    job = Job(
        FramesJob("tvbench", str(root), 8, "segments", None, short_clips),
        output=dict(frames=out / "f.npz", questions=out / "q.parquet", skipped=out / "s.parquet"),
        task="t",
    )
    extract_task(job)
    return pd.read_parquet(out / "q.parquet"), pd.read_parquet(out / "s.parquet")


Q = dict(question="What moves?", candidates=["left", "right"], answer="left")


def test_a_clip_shorter_than_the_frames_asked_is_skipped_with_its_reason(tmp_path):
    write_task(
        tmp_path,
        [dict(video="long.mp4", **Q), dict(video="short.mp4", **Q)],
        {"long.mp4": 12, "short.mp4": 3},
    )
    questions, skipped = extract(tmp_path, tmp_path / "out")
    assert list(questions.sample_id) == ["t_0000"]
    (reason,) = skipped.reason
    assert "3 distinct frames, fewer than the 8 asked" in reason and "short_clips: repeat" in reason
    with pytest.raises(ShortClip):
        read_frames(tmp_path / "video/t/short.mp4", 8)


def test_short_clips_repeat_uses_the_clip_and_its_rows_say_so(tmp_path):
    write_task(tmp_path, [dict(video="short.mp4", **Q)], {"short.mp4": 3})
    questions, skipped = extract(tmp_path, tmp_path / "out", "repeat")
    assert list(questions.sample_id) == ["t_0000"] and skipped.empty
    frames = read_frames(tmp_path / "video/t/short.mp4", 8, repeats=True)
    assert frames.shape[0] == 8 and len({f.tobytes() for f in frames}) <= 3
    from vlmflow.provenance import Stamp, provenance

    row = provenance("m", "float32", Stamp("sdpa", "fast", 8, "segments", 0, "repeat"), (8, 2, 2))
    assert row["short_clips"] == "repeat"


def test_a_question_written_twice_counts_once_and_the_repeat_is_recorded(tmp_path):
    other = {**Q, "question": "What turns?"}
    entries = [dict(video="a.mp4", **Q), dict(video="a.mp4", **other), dict(video="a.mp4", **Q)]
    write_task(tmp_path, entries, {"a.mp4": 12})
    questions, skipped = extract(tmp_path, tmp_path / "out")
    assert list(questions.sample_id) == ["t_0000", "t_0001"]
    assert skipped.to_dict("records") == [
        dict(
            sample_id="t_0002",
            task="t",
            reason="duplicate of t_0000 (same video, clip, question, options and answer)",
        )
    ]


# --- numbers -------------------------------------------------------------------------------------
def one_sample_job(tmp_path, max_tokens=None) -> tuple[Job, dict]:
    """A cache_features job on one synthetic question, and its outputs."""
    q, frames = synthetic_sample()
    row = dict(
        sample_id=q.sample_id,
        task=q.task,
        question=q.question,
        candidates=q.candidates,
        answer_index=q.answer_index,
        video="",
        params=json.dumps(q.params),
    )
    pd.DataFrame([row]).to_parquet(tmp_path / "q.parquet")
    np.savez(tmp_path / "f.npz", frames=frames[None])
    out = dict(features=tmp_path / "v.pt", baseline=tmp_path / "b.parquet", skipped=tmp_path / "s.parquet")
    job = Job(
        FeaturesJob(ModelLoad("llava_video", "x", "toy", "float32", "cpu"), max_tokens),
        input=dict(questions=tmp_path / "q.parquet", frames=tmp_path / "f.npz"),
        output=out,
        dataset="d",
        model="tiny",
    )
    return job, out


def test_a_sample_longer_than_max_tokens_is_skipped_with_its_length(tiny_adapter, tmp_path):
    job, out = one_sample_job(tmp_path)
    cache_task(tiny_adapter, job)
    (n,) = pd.read_parquet(out["baseline"]).n_tokens
    cache_task(tiny_adapter, one_sample_job(tmp_path, max_tokens=n)[0])  # as long as allowed: kept
    assert len(pd.read_parquet(out["baseline"])) == 1
    cache_task(tiny_adapter, one_sample_job(tmp_path, max_tokens=n - 1)[0])
    assert pd.read_parquet(out["baseline"]).empty
    (reason,) = pd.read_parquet(out["skipped"]).reason
    assert reason == f"tiny: {n} tokens, more than the model's max_tokens {n - 1}; raise max_tokens " + (
        "if the job's memory allows, or sample fewer frames"
    )


def test_nan_probabilities_skip_the_sample_with_its_reason(tiny_adapter, tmp_path):
    """A sample whose unmodified answer holds NaN is recorded with its reason and left out of the
    baseline (so no later stage reads it); the empty baseline keeps its columns."""
    job, out = one_sample_job(tmp_path)
    lm_head = tiny_adapter.decoder().lm_head
    saved = lm_head.weight.detach().clone()
    try:
        with torch.no_grad():
            lm_head.weight[0, 0] = float("nan")  # a broken checkpoint
        cache_task(tiny_adapter, job)
    finally:
        with torch.no_grad():
            lm_head.weight.copy_(saved)
    baseline = pd.read_parquet(out["baseline"])
    assert baseline.empty and {"sample_id", "p_base", "correct_base"} <= set(baseline.columns)
    (reason,) = pd.read_parquet(out["skipped"]).reason
    assert reason.startswith("tiny: the model's next-token probabilities hold NaN or Inf")
    assert "dtype: float32" in reason


def test_nan_under_a_knockout_stops_the_job_naming_the_sample(tiny_adapter):
    from vlmflow.jobs import naming

    job = Job(None, dataset="synthetic", model="tiny")
    with pytest.raises(NonFinite, match=r"^tiny on synthetic/t, sample t_0003: the model's next-token"):
        with naming(job, "t", "t_0003"):
            from vlmflow.models.base import finite

            finite(torch.tensor([0.5, float("nan")]))


# --- checkpoints ---------------------------------------------------------------------------------
def load(path):
    return load_from_config(ModelLoad("llava_video", str(path), "toy", "float32", "cpu"), "mine")


@pytest.fixture
def checkpoint(tiny_checkpoint, tmp_path):
    out = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, out)
    return out


def test_a_truncated_weight_file_is_named_before_loading(checkpoint):
    f = checkpoint / "model.safetensors"
    os.truncate(f, f.stat().st_size // 2)
    with pytest.raises(
        ValueError, match=r"weight file .*model.safetensors is truncated .*; download or copy it again"
    ):
        load(checkpoint)
    f.write_bytes(b"\xff" * 64)
    with pytest.raises(ValueError, match="is corrupt"):
        load(checkpoint)


def test_a_tokenizer_without_the_image_token_is_named(checkpoint):
    """Tokenizer files where <image> is no longer a special token (it splits into "<", "image", ">")."""
    tok = json.loads((checkpoint / "tokenizer.json").read_text())
    tok["added_tokens"] = [t for t in tok["added_tokens"] if t["content"] != "<image>"]
    (checkpoint / "tokenizer.json").write_text(json.dumps(tok))
    cfg = json.loads((checkpoint / "tokenizer_config.json").read_text())
    for key in ("extra_special_tokens", "model_specific_special_tokens", "image_token"):
        cfg.pop(key, None)
    (checkpoint / "tokenizer_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="its tokenizer .* has no image placeholder token with the id 4"):
        load(checkpoint)


def test_a_processor_for_another_image_size_is_named(checkpoint):
    proc = json.loads((checkpoint / "preprocessor_config.json").read_text())
    proc["crop_size"] = {"height": 64, "width": 64}  # the toy's vision tower takes 48 px
    (checkpoint / "preprocessor_config.json").write_text(json.dumps(proc))
    with pytest.raises(
        ValueError, match="preprocessor_config.json crops frames to 64 px but the vision tower takes 48 px"
    ):
        load(checkpoint)


def test_a_videollama3_processor_with_another_patch_size_is_named(videollama3_checkpoint, tmp_path):
    from vlmflow.models.videollama3 import VideoLlama3Adapter

    out = tmp_path / "vl3"
    shutil.copytree(videollama3_checkpoint, out)
    proc = json.loads((out / "preprocessor_config.json").read_text())
    (out / "preprocessor_config.json").write_text(json.dumps({**proc, "patch_size": 16}))
    with pytest.raises(ValueError, match="has patch_size 16, but VideoLLaMA3's vision encoder takes 14"):
        VideoLlama3Adapter.from_pretrained(str(out))


# --- files ---------------------------------------------------------------------------------------
def test_a_full_disk_leaves_no_partial_output_and_names_the_file(tmp_path, monkeypatch):
    out = tmp_path / "table.parquet"
    df = pd.DataFrame({"a": range(1000)})

    def full(self, path, *a, **k):
        with open(path, "wb") as fh:
            fh.write(b"PAR1 half a table")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full)
    with pytest.raises(OSError, match=re.escape(f"[Errno 28] writing {out}: No space left on device")):
        io.write_parquet(df, out)
    assert list(tmp_path.iterdir()) == []  # neither the output nor its temporary file
    monkeypatch.undo()  # space freed: the rerun writes it
    io.write_parquet(df, out)
    assert pd.read_parquet(out).equals(df)


@pytest.mark.slow
def test_a_second_run_in_the_same_directory_is_refused_and_the_first_finishes(tmp_path):
    """Snakemake's lock: while one run holds the directory, a second stops with the reason, and the
    first goes on to finish its outputs."""
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(OWN))
    args = ["all", "--configfile", str(tmp_path / "mine.yaml")]
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen(
            snakemake_cmd(tmp_path, *args, cores=1), stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.time() + 300
        while not list((tmp_path / ".snakemake/locks").glob("*.lock")) and time.time() < deadline:
            assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            time.sleep(0.2)
        second = snakemake(tmp_path, *args)
        assert first.poll() is None, "the first run ended before the second one was tried"
        assert first.wait(timeout=900) == 0, (tmp_path / "first.log").read_text()[-3000:]
    assert second.returncode != 0
    assert "Directory cannot be locked" in second.stdout + second.stderr
    assert (tmp_path / "figures/fig3_vql_to_ql.csv").is_file()

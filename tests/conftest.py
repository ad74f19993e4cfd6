"""Shared fixtures: tiny random-weight checkpoints of the LLaVA video family, saved with
save_pretrained and loaded back through the adapter, as real checkpoints are."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from vlmflow.data import synthetic
from vlmflow.models import toy
from vlmflow.models.llava_video import LlavaVideoAdapter

REPO = Path(__file__).resolve().parents[1]


def tiny_config() -> dict:
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    ds = cfg["datasets"]["synthetic"]
    ds["generate"]["n_per_task"] = 4
    ds["tasks"] = ["action_sequence", "scene_transition"]
    cfg["datasets"]["synthetic-open"]["generate"]["n_per_task"] = 3  # the open-ended flow's clips
    # the LongVideoBench and Video-MME versions run in their own test (test_lvb_videomme.py)
    for name in ("synthetic-lvb", "synthetic-videomme"):
        del cfg["datasets"][name]
    cfg["runs"] = [r for r in cfg["runs"] if r["dataset"] in cfg["datasets"]]
    for name in ("lvb_vql_to_ql", "videomme_vql_to_ql"):
        del cfg["figures"]["curves"][name]
    for m in cfg["models"].values():
        m["path"] = str(REPO / m["path"])
    # Fig. 6 on a task of the reduced run, with words of its question
    # ("In which order do the squares appear?")
    cfg["figures"]["fig6_attention_maps"].update(task="action_sequence", words=["order", "appear"])
    # the video model answers every question of the reduced run right: the failure cases run on the
    # image-stage model, which gets most wrong, so the predicted-option knockouts see real samples
    cfg["figures"]["figS_failure_cases"]["model"] = "toy-image"
    return cfg


def snakemake_cmd(workdir: Path, *args: str, cores: int = 2) -> list[str]:
    """The command line of the repository's workflow run in `workdir`."""
    snakefile = str(REPO / "Snakefile")
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        snakefile,
        "--directory",
        str(workdir),
        "--cores",
        str(cores),
        *args,
    ]


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(snakemake_cmd(workdir, *args), capture_output=True, text=True, timeout=1200)


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory):
    """The reduced default run (2 tasks x 4 questions), shared by the workflow tests."""
    work = tmp_path_factory.mktemp("e2e")
    (work / "config.yaml").write_text(yaml.safe_dump(tiny_config()))
    res = snakemake(work)
    assert res.returncode == 0, res.stderr[-4000:]
    return work


def make_tiny_checkpoint(
    out: Path, layers: int = 4, kv_heads: int = 2, positions: str = "frame_shared", seed: int = 0
) -> Path:
    prompts = yaml.safe_load((REPO / "config.yaml").read_text())["datasets"]["synthetic"]["answer_prompts"]
    tok = toy.build_tokenizer(synthetic.vocabulary(list(prompts.values())))
    model = toy.build_model(tok, seed, synthetic.SIZE)
    cfg = model.config
    cfg.text_config.num_hidden_layers = layers
    cfg.text_config.num_key_value_heads = kv_heads
    cfg.text_config.hidden_size = 64
    cfg.text_config.intermediate_size = 128
    cfg.video_position_ids = positions
    torch.manual_seed(seed)
    from transformers import LlavaForConditionalGeneration

    model = LlavaForConditionalGeneration(cfg)
    with torch.no_grad():  # sharpen the random model so probabilities are far from uniform
        model.lm_head.weight.mul_(30)
    toy.save(model, tok, toy.build_image_processor(synthetic.SIZE), out)
    return out


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "tiny-llava-video")


@pytest.fixture(scope="session")
def tiny_adapter(tiny_checkpoint) -> LlavaVideoAdapter:
    return LlavaVideoAdapter.from_pretrained(str(tiny_checkpoint), system_prompt=toy.SYSTEM_PROMPT)


def synthetic_sample(task: str = "action_sequence", seed: int = 0):
    q = synthetic.sample_question(task, np.random.default_rng(seed))
    q.sample_id = f"{task}_{seed}"
    idx = synthetic.sampled_indices(q)
    q.params["frame_times"] = [i / synthetic.FPS for i in idx]  # as the extract_frames rule records them
    frames = synthetic.render(q, idx)
    q.params["frame_size"] = list(frames.shape[1:3])
    return q, frames


@pytest.fixture(scope="session")
def pllava_checkpoint(tmp_path_factory) -> Path:
    """A tiny random LLaVA-NeXT-Video-FT checkpoint in the authors' PLLaVA format (hub key names)."""
    from vlmflow.testing.checkpoints import write_pllava

    return write_pllava(tmp_path_factory.mktemp("pllava") / "tiny-pllava")


@pytest.fixture(scope="session")
def llava_next_checkpoint(tmp_path_factory) -> Path:
    """A tiny random LLaVA-NeXT image model in the llava-hf format."""
    from vlmflow.testing.checkpoints import write_llava_next

    return write_llava_next(tmp_path_factory.mktemp("llava-next") / "tiny-llava-next")


@pytest.fixture(scope="session")
def llava_next_video_checkpoint(tmp_path_factory) -> Path:
    """A tiny random LLaVA-NeXT-Video checkpoint in the llava-hf format (transformers-native)."""
    from vlmflow.testing.checkpoints import write_llava_next_video

    return write_llava_next_video(tmp_path_factory.mktemp("llava-next-video") / "tiny-llava-next-video")


@pytest.fixture(scope="session")
def llava_onevision_checkpoint(tmp_path_factory) -> Path:
    """A tiny random LLaVA-OneVision checkpoint in the llava-hf hub format (transformers-native)."""
    from vlmflow.testing.checkpoints import write_llava_onevision

    return write_llava_onevision(tmp_path_factory.mktemp("llava-onevision") / "tiny-llava-onevision")


@pytest.fixture(scope="session")
def internvl_hf_checkpoint(tmp_path_factory) -> Path:
    """A tiny random InternVL checkpoint in transformers' format (the InternVL3 `-hf` repositories)."""
    from vlmflow.testing.checkpoints import write_internvl_hf

    return write_internvl_hf(tmp_path_factory.mktemp("internvl-hf") / "tiny-internvl-hf")


@pytest.fixture(scope="session")
def internvl3_5_hf_checkpoint(tmp_path_factory) -> Path:
    """The same in InternVL3.5's form: a Qwen3 decoder (q/k norms in attention)."""
    from vlmflow.testing.checkpoints import write_internvl_hf

    return write_internvl_hf(
        tmp_path_factory.mktemp("internvl3.5-hf") / "tiny-internvl3.5-hf", decoder="qwen3"
    )


@pytest.fixture(scope="session")
def qwen2_5_vl_checkpoint(tmp_path_factory) -> Path:
    """A tiny random Qwen2.5-VL checkpoint in transformers' format."""
    from vlmflow.testing.checkpoints import write_qwen2_5_vl

    return write_qwen2_5_vl(tmp_path_factory.mktemp("qwen2.5-vl") / "tiny-qwen2.5-vl")


@pytest.fixture(scope="session")
def qwen3_vl_checkpoint(tmp_path_factory) -> Path:
    """A tiny random Qwen3-VL checkpoint in transformers' format (two DeepStack levels)."""
    from vlmflow.testing.checkpoints import write_qwen3_vl

    return write_qwen3_vl(tmp_path_factory.mktemp("qwen3-vl") / "tiny-qwen3-vl")


@pytest.fixture(scope="session")
def internvl_checkpoint(tmp_path_factory) -> Path:
    """A tiny random Mini-InternVL checkpoint in InternVL's released format."""
    from vlmflow.testing.checkpoints import write_internvl

    return write_internvl(tmp_path_factory.mktemp("internvl") / "tiny-internvl", dtype=torch.float32)


@pytest.fixture(scope="session")
def videollama3_checkpoint(tmp_path_factory) -> Path:
    """A tiny random VideoLLaMA3 checkpoint in the released format."""
    from vlmflow.testing.checkpoints import write_videollama3

    return write_videollama3(tmp_path_factory.mktemp("videollama3") / "tiny-videollama3", dtype=torch.float32)


def _noise_video(path: Path, n_frames: int, seed: int, size=(40, 64)) -> None:
    rng = np.random.default_rng(seed)
    synthetic.write_video(path, rng.integers(0, 255, (n_frames, *size, 3), dtype=np.uint8))


def write_tvbench_fixture(root: Path, n: int = 3) -> Path:
    """A TVBench tree (json/<task>.json, video/<task>/*.mp4) with real mp4 files: a plain task, a
    task with clip bounds, and one bad entry of each kind (missing video, corrupt video, answer not
    among the candidates)."""
    import json

    tasks = {
        "moving_direction": ("Which direction does the red object move?", ["left", "right", "up", "down"]),
        "action_sequence": (
            "What did the person do first?",
            ["Took the cup.", "Opened the door.", "Sat down."],
        ),
    }
    for t, (question, cands) in tasks.items():
        entries = []
        for i in range(n):
            e = dict(video=f"{t}_{i}.mp4", question=question, candidates=cands, answer=cands[i % len(cands)])
            if t == "action_sequence":
                e.update(start=0.5, end=2.5)
            entries.append(e)
            _noise_video(root / "video" / t / e["video"], 24, seed=i)
        if t == "moving_direction":
            entries.append(dict(video="missing.mp4", question=question, candidates=cands, answer="left"))
            entries.append(dict(video="corrupt.mp4", question=question, candidates=cands, answer="left"))
            (root / "video" / t / "corrupt.mp4").write_bytes(b"\x00not an mp4" * 50)
            entries.append(dict(video=f"{t}_0.mp4", question=question, candidates=cands, answer="sideways"))
        (root / "json").mkdir(parents=True, exist_ok=True)
        (root / "json" / f"{t}.json").write_text(json.dumps(entries))
    return root


def write_tomato_fixture(root: Path, n: int = 3) -> Path:
    """A TOMATO tree (jsons/<task>.json keyed "0", "1", ..., videos/<demonstration_type>/<key>.mp4)
    with an answer index out of range as the bad entry."""
    import json

    tasks = {
        "count": ("How many times does the ball bounce?", ["1", "2", "3", "4", "5"]),
        "shape&trend": ("What shape does the hand trace?", ["circle", "triangle", "line"]),
    }
    for t, (question, options) in tasks.items():
        entries = {}
        for i in range(n):
            kind = ["human", "object", "simulated"][i % 3]
            key = f"{t.replace('&', '_')}-{i:03d}"
            entries[str(i)] = dict(
                question=question,
                options=options,
                answer=i % len(options),
                key=key,
                demonstration_type=kind,
                motion_type="x",
                variation="none",
                note="",
            )
            _noise_video(root / "videos" / kind / f"{key}.mp4", 16, seed=100 + i)
        entries[str(n)] = dict(entries["0"], answer=len(options))
        (root / "jsons").mkdir(parents=True, exist_ok=True)
        (root / "jsons" / f"{t}.json").write_text(json.dumps(entries))
    return root

"""The GPU check, one command: the engine benchmark at 7B shape in bf16, then a real-size pipeline
shard, each timed against the paper's reference method in the same run, with peak GPU memory.

Pipeline shard: a random-weight LLaVA-NeXT-7B-Video-FT-shaped checkpoint (Vicuna-7B decoder over
CLIP ViT-L/14-336, 1152 video tokens; a small tokenizer, so the vocabulary is not 32k) written in
the PLLaVA format and loaded back through the adapter, 4 questions of the synthetic benchmark's
Action Sequence task, then the workflow's own stage functions: frame extraction, feature caching,
and every knockout experiment with the fast engine and with the reference method. Needs about 30 GB of
free disk for the checkpoint and a GPU with 40 GB or more.

    python benchmarks/gpu_pipeline.py           # on a GPU machine
    python benchmarks/gpu_pipeline.py --tiny    # the same steps on a tiny model on the CPU (a smoke test)
    python benchmarks/gpu_pipeline.py --family internvl   # Mini-InternVL-4B-shaped, in InternVL's
        # released format: 2048 video tokens per question (1152 for LLaVA), so longer sequences
        # and larger masks; about 10 GB of disk
    python benchmarks/gpu_pipeline.py --family llava_next_video   # 7B-shaped, in the llava-hf
        # format of LLaVA-NeXT-Video-7B-hf (transformers' own classes): 1152 video tokens
    python benchmarks/gpu_pipeline.py --family llava_onevision   # 7B-shaped LLaVA-OneVision-hf
        # (Qwen2-7B over SigLIP, 384 px): 8 x 196 + 1 = 1569 video tokens
    python benchmarks/gpu_pipeline.py --family internvl_hf   # 8B-shaped InternVL3-hf (Qwen2.5-7B over
        # InternViT-300M): 8 x 256 video tokens in per-frame spans
    python benchmarks/gpu_pipeline.py --family qwen2_5_vl   # 7B-shaped Qwen2.5-VL: 3-D positions,
        # 4 temporal groups of the synthetic clips at the fixture's pixel budget
    python benchmarks/gpu_pipeline.py --family qwen3_vl   # 8B-shaped Qwen3-VL: DeepStack additions
        # after the first 3 layers, time text between the 4 groups, interleaved M-RoPE

Ends with: RESULT pipeline_speedup=<reference / fast, all experiments> max_diff=<largest |difference|
of rel_change, in percentage points> peak_gpu_gib_fast=<a> peak_gpu_gib_reference=<b>
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).parent))
import knockout_speed  # noqa: E402

from vlmflow.data.synthetic import write_benchmark  # noqa: E402
from vlmflow.jobs import Job  # noqa: E402
from vlmflow.knockout.spec import OPEN_ENDED_EXPERIMENTS, PAPER_EXPERIMENTS  # noqa: E402
from vlmflow.models.internvl import InternVLAdapter  # noqa: E402
from vlmflow.models.internvl_hf import InternVLHFAdapter  # noqa: E402
from vlmflow.models.llava_next_video import LlavaNextVideoAdapter  # noqa: E402
from vlmflow.models.llava_onevision import LlavaOnevisionAdapter  # noqa: E402
from vlmflow.models.llava_video import LlavaVideoAdapter  # noqa: E402
from vlmflow.models.qwen2_5_vl import Qwen25VLAdapter  # noqa: E402
from vlmflow.models.qwen3_vl import Qwen3VLAdapter  # noqa: E402
from vlmflow.provenance import Stamp  # noqa: E402
from vlmflow.settings import model_settings  # noqa: E402
from vlmflow.stages.features import FeaturesJob, cache_task  # noqa: E402
from vlmflow.stages.frames import FramesJob, extract_task  # noqa: E402
from vlmflow.stages.knockout import KnockoutJob, Sweep, run_experiment  # noqa: E402
from vlmflow.testing.checkpoints import (  # noqa: E402
    INTERNVL3_8B,
    INTERNVL_HF_TINY,
    INTERNVL_TINY,
    MINI_INTERNVL_4B,
    ONEVISION_7B,
    ONEVISION_TINY,
    QWEN2_5_VL_7B,
    QWEN2_5_VL_TINY,
    QWEN3_VL_8B,
    QWEN3_VL_TINY,
    TINY,
    VICUNA_7B,
    write_internvl,
    write_internvl_hf,
    write_llava_next_video,
    write_llava_onevision,
    write_pllava,
    write_qwen2_5_vl,
    write_qwen3_vl,
)

TASK = "action_sequence"
# family -> (writer, adapter, tiny shape, real shape, name of the real shape)
FAMILIES_AT_SIZE = {
    "llava_video": (write_pllava, LlavaVideoAdapter, TINY, VICUNA_7B, "7B-shaped PLLaVA"),
    "internvl": (write_internvl, InternVLAdapter, INTERNVL_TINY, MINI_INTERNVL_4B, "4B-shaped Mini-InternVL"),
    "llava_next_video": (
        write_llava_next_video,
        LlavaNextVideoAdapter,
        TINY,
        VICUNA_7B,
        "7B-shaped LLaVA-NeXT-Video-hf",
    ),
    "llava_onevision": (
        write_llava_onevision,
        LlavaOnevisionAdapter,
        ONEVISION_TINY,
        ONEVISION_7B,
        "7B-shaped LLaVA-OneVision-hf",
    ),
    "internvl_hf": (
        write_internvl_hf,
        InternVLHFAdapter,
        INTERNVL_HF_TINY,
        INTERNVL3_8B,
        "8B-shaped InternVL3-hf",
    ),
    "qwen2_5_vl": (write_qwen2_5_vl, Qwen25VLAdapter, QWEN2_5_VL_TINY, QWEN2_5_VL_7B, "7B-shaped Qwen2.5-VL"),
    "qwen3_vl": (write_qwen3_vl, Qwen3VLAdapter, QWEN3_VL_TINY, QWEN3_VL_8B, "8B-shaped Qwen3-VL"),
}


class Clock:
    """Wall time and peak GPU memory of one phase."""

    def __init__(self, name: str, cuda: bool):
        self.name, self.cuda = name, cuda

    def __enter__(self):
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        self.t = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            torch.cuda.synchronize()
        self.seconds = time.perf_counter() - self.t
        self.peak_gib = torch.cuda.max_memory_allocated() / 2**30 if self.cuda else 0.0
        print(
            f"  {self.name:40s} {self.seconds:8.2f} s"
            + (f"  peak {self.peak_gib:6.2f} GiB" if self.cuda else ""),
            flush=True,
        )


def pipeline_shard(work: Path, tiny: bool, n_questions: int = 4, family: str = "llava_video") -> str:
    cuda = not tiny
    device, dtype = ("cpu", torch.float32) if tiny else ("cuda", torch.bfloat16)
    write, adapter_cls, tiny_shape, real_shape, name = FAMILIES_AT_SIZE[family]
    shape, window = (tiny_shape, 2) if tiny else (real_shape, 9)
    print(
        f"pipeline shard: {'tiny' if tiny else name} checkpoint, {dtype}, {device}, "
        f"{n_questions} questions of {TASK}, window {window}",
        flush=True,
    )
    with Clock("write random checkpoint", cuda):
        ckpt = write(work / "checkpoint", shape=shape, dtype=dtype, device=device)
    with Clock("synthetic benchmark + frame extraction", False):
        write_benchmark(work / "data", n_questions, seed=0, tasks=[TASK])
        d = work / "results"
        files = dict(frames=d / "frames.npz", questions=d / "questions.parquet")
        frames = FramesJob("tvbench", str(work / "data"), 8, "segments")
        extract_task(Job(frames, {}, dict(files, skipped=d / "skipped.parquet"), task=TASK))
    with Clock("load checkpoint through the adapter", cuda):
        adapter = adapter_cls.from_pretrained(str(ckpt), dtype=dtype, device=device)
    with Clock("feature caching (video tokens + baseline)", cuda):
        cached = dict(features=d / "features.pt", baseline=d / "baseline.parquet")
        outputs = dict(cached, skipped=d / "model_skipped.parquet")
        load = model_settings("bench", dict(family=family, path=str(ckpt), window=window)).load
        cache_task(adapter, Job(FeaturesJob(load), files, outputs, "bench", "bench", TASK))
    times, peaks, diffs = {"fast": 0.0, "reference": 0.0}, {"fast": 0.0, "reference": 0.0}, []
    for experiment, definition in PAPER_EXPERIMENTS.items():
        if experiment in OPEN_ENDED_EXPERIMENTS:  # its inputs are prompt + answer: the open-ended flow
            continue
        tables = {}
        for engine in ("fast", "reference"):
            out = d / f"{experiment}_{engine}.parquet"
            stamp = Stamp("sdpa", engine, 8, "segments", 0)
            sweep = Sweep("center", window, "all")
            settings = KnockoutJob(load, definition, sweep, (0, 1), 8, False, stamp)
            job = Job(settings, dict(files, **cached), dict(table=out), "bench", "bench", TASK)
            with Clock(f"{experiment} ({engine})", cuda) as c:
                run_experiment(adapter, job)
            times[engine] += c.seconds
            peaks[engine] = max(peaks[engine], c.peak_gib)
            tables[engine] = pd.read_parquet(out)
        keys = ["sample_id", "block", "layer"]
        both = tables["fast"].merge(tables["reference"], on=keys, suffixes=("_fast", "_ref"))
        assert len(both) == len(tables["fast"]) == len(tables["reference"]), (
            f"{experiment}: tables differ in rows"
        )
        diffs.append(float((both.rel_change_fast - both.rel_change_ref).abs().max()))
        ratio = times["reference"] / max(times["fast"], 1e-9)
        print(
            f"  {experiment}: reference / fast = x{ratio:.1f} so far, max |diff| {diffs[-1]:.2e} pp",
            flush=True,
        )
    return (
        f"RESULT pipeline_speedup={times['reference'] / times['fast']:.1f} max_diff={max(diffs):.2e} "
        f"peak_gpu_gib_fast={peaks['fast']:.2f} peak_gpu_gib_reference={peaks['reference']:.2f}"
    )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--tiny", action="store_true", help="tiny model on the CPU: checks the steps, measures nothing"
    )
    ap.add_argument("--skip-engine-benchmark", action="store_true")
    ap.add_argument("--family", choices=sorted(FAMILIES_AT_SIZE), default="llava_video")
    ap.add_argument("--workdir", help="where the checkpoint and tables go (default: a temporary directory)")
    args = ap.parse_args(argv)
    if not args.tiny and not torch.cuda.is_available():
        ap.error("needs a CUDA GPU (or --tiny for the CPU smoke test)")
    if not args.skip_engine_benchmark:
        print("== engine benchmark", flush=True)
        knockout_speed.main(["--quick"] if args.tiny else ["--gpu7b"])
    print("== pipeline shard", flush=True)
    with tempfile.TemporaryDirectory(dir=args.workdir) as work:
        print(pipeline_shard(Path(work), args.tiny, family=args.family))


if __name__ == "__main__":
    main()

"""Data stage: the synthetic benchmark (when the config generates one), and frame extraction: the
sampled frames of every question of a task, decoded once."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vlmflow.data import synthetic
from vlmflow.data.formats import format_module, task_id
from vlmflow.data.frames import read_frames
from vlmflow.io import atomic_path, write_parquet
from vlmflow.jobs import Job


@dataclass(frozen=True)
class SyntheticJob:
    """What writing a dataset's synthetic benchmark reads."""

    tasks: tuple[str, ...]
    n_per_task: int
    seed: int
    format: str = "tvbench"  # the layout it is written in (SYNTHETIC_WRITERS)
    root: str = ""

    @classmethod
    def of(cls, s, wc, dataset: str) -> "SyntheticJob":
        d = s.datasets[dataset]
        return cls(d.tasks, d.generate.n_per_task, d.generate.seed, d.format, d.root)


# the layouts the synthetic benchmark is written in: TVBench's, and for the appendix's runs
# LongVideoBench's and Video-MME's, and VCGBench's (the toy's open-ended set)
SYNTHETIC_WRITERS = {
    "tvbench": synthetic.write_benchmark,
    "longvideobench": synthetic.write_longvideobench,
    "videomme": synthetic.write_videomme,
    "vcgbench": synthetic.write_open_ended,
}


def write_synthetic(job: Job) -> None:
    """The synthetic benchmark in its dataset's format under the dataset's root."""
    c = job.settings
    SYNTHETIC_WRITERS[c.format](Path(c.root), c.n_per_task, c.seed, list(c.tasks))


@dataclass(frozen=True)
class FramesJob:
    """What extracting a task's frames reads."""

    format: str
    root: str
    n_frames: int
    frame_sampling: str
    limit: int | None = None
    short_clips: str = "skip"  # skip | repeat

    @classmethod
    def of(cls, s, wc) -> "FramesJob":
        d = s.datasets[wc.dataset]
        return cls(d.format, d.root, d.n_frames or s.n_frames, d.frame_sampling, d.limit, d.short_clips)


def drop_duplicates(questions: list, skipped: list[dict]) -> list:
    """The questions less repeats of an earlier one (same video, clip, question, options and answer),
    each repeat recorded in `skipped` with the sample it repeats."""
    first, kept = {}, []
    for q in questions:
        key = (q.video, q.bounds, q.question, tuple(q.candidates), q.answer_index)
        if key in first:
            skipped.append(
                dict(
                    sample_id=q.sample_id,
                    task=q.task,
                    reason=f"duplicate of {first[key]} (same video, clip, question, options and answer)",
                )
            )
            continue
        first[key] = q.sample_id
        kept.append(q)
    return kept


def extract_task(job: Job) -> None:
    """Write frames [n, T, H, W, 3] uint8 (npz), the question table and the skipped table of
    `job.task`."""
    c, task = job.settings, job.task
    questions, skipped = format_module(c.format).load_task(c.root, task)
    tid = task_id(c.format, c.root, task)
    questions = drop_duplicates(questions, skipped)
    questions = questions[: c.limit] if c.limit else questions
    frames, rows = [], []
    for k, q in enumerate(questions):
        try:
            clip, times = read_frames(
                q.video, c.n_frames, q.bounds, True, c.frame_sampling, c.short_clips == "repeat"
            )
        except (FileNotFoundError, ValueError) as err:
            skipped.append(dict(sample_id=q.sample_id, task=task, reason=str(err)))
            continue
        frames.append(clip)
        rows.append(
            dict(
                sample_id=q.sample_id,
                task=task,
                task_id=tid,
                question=q.question,
                candidates=q.candidates,
                answer_index=q.answer_index,
                video=q.video,
                # annotation fields beyond the format's own (answer prompts), the frames' times in
                # full, with the value type the released VideoLLaMA3 loader gives them, and their
                # size (height, width: the grid of a model that picks its resolution per video)
                params=json.dumps(
                    {
                        **q.params,
                        "frame_times": [float(t) for t in times],
                        "frame_times_numpy": isinstance(times[0], np.floating),
                        "frame_size": [int(clip.shape[1]), int(clip.shape[2])],
                    }
                ),
            )
        )
        if (k + 1) % 50 == 0:
            print(f"[frames] {task}: {k + 1}/{len(questions)}", flush=True)
    if not rows:
        raise ValueError(
            f"{task}: no usable sample in {c.root} ({len(skipped)} skipped: "
            f"{skipped[0]['reason'] if skipped else 'empty task'})"
        )
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:  # videos of different sizes: keep them per sample
        arrays = {r["sample_id"]: f for r, f in zip(rows, frames)}
    else:
        arrays = {"frames": np.stack(frames)}
    with atomic_path(job.output.frames) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    write_parquet(pd.DataFrame(rows), job.output.questions)
    write_parquet(pd.DataFrame(skipped, columns=["sample_id", "task", "reason"]), job.output.skipped)
    print(f"[frames] {task}: {len(rows)} samples, {len(skipped)} skipped", flush=True)


def load_frames(path: Path, sample_ids: list[str]) -> list[np.ndarray]:
    with np.load(path) as z:
        if "frames" in z.files:
            return list(z["frames"])
        return [z[s] for s in sample_ids]

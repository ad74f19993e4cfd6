"""Frame extraction stage: decode the sampled frames of every question of a task, once."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from vlmflow.data.formats import format_module, task_id
from vlmflow.data.frames import read_frames
from vlmflow.io import atomic_path, write_parquet


def extract_task(
    fmt: str,
    root: str,
    task: str,
    n_frames: int,
    frames_out: Path,
    questions_out: Path,
    skipped_out: Path,
    limit: int | None = None,
    sampling: str = "segments",
) -> None:
    """Write frames [n, T, H, W, 3] uint8 (npz), the question table and the skipped table."""
    questions, skipped = format_module(fmt).load_task(root, task)
    tid = task_id(fmt, root, task)
    questions = questions[:limit] if limit else questions
    frames, rows = [], []
    for k, q in enumerate(questions):
        try:
            clip, times = read_frames(q.video, n_frames, q.bounds, True, sampling)
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
                # annotation fields beyond the format's own (answer prompts), and the frames' times
                # in full, with the value type the released VideoLLaMA3 loader gives them
                params=json.dumps(
                    {
                        **q.params,
                        "frame_times": [float(t) for t in times],
                        "frame_times_numpy": isinstance(times[0], np.floating),
                    }
                ),
            )
        )
        if (k + 1) % 50 == 0:
            print(f"[frames] {task}: {k + 1}/{len(questions)}", flush=True)
    if not rows:
        raise ValueError(
            f"{task}: no usable sample in {root} ({len(skipped)} skipped: "
            f"{skipped[0]['reason'] if skipped else 'empty task'})"
        )
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:  # videos of different sizes: keep them per sample
        arrays = {r["sample_id"]: f for r, f in zip(rows, frames)}
    else:
        arrays = {"frames": np.stack(frames)}
    with atomic_path(frames_out) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    write_parquet(pd.DataFrame(rows), questions_out)
    write_parquet(pd.DataFrame(skipped, columns=["sample_id", "task", "reason"]), skipped_out)
    print(f"[frames] {task}: {len(rows)} samples, {len(skipped)} skipped", flush=True)


def load_frames(path: Path, sample_ids: list[str]) -> list[np.ndarray]:
    with np.load(path) as z:
        if "frames" in z.files:
            return list(z["frames"])
        return [z[s] for s in sample_ids]

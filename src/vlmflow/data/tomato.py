"""TOMATO annotation format: jsons/<task>.json = {"0": {question, options, answer (int),
key, demonstration_type, ...}, ...}; the video of an entry is videos/<demonstration_type>/<key>.mp4.
Tasks: count, direction, rotation, shape&trend, velocity&frequency, visual_cues."""

from __future__ import annotations

from pathlib import Path

from vlmflow.data import not_an_index, read_json
from vlmflow.question import Question

FIELDS = ("question", "options", "answer", "key", "demonstration_type")


def annotation_path(root: str | Path, task: str) -> Path:
    return Path(root) / "jsons" / f"{task}.json"


def load_task(root: str | Path, task: str, dataset: str = "tomato") -> tuple[list[Question], list[dict]]:
    """Questions of one task in the file's key order, and the entries skipped with their reason."""
    root = Path(root)
    path = annotation_path(root, task)
    entries = read_json(path, "TOMATO", dict)
    out, skipped = [], []
    for k, e in entries.items():
        sid = f"{task}_{k}"
        missing = [f for f in FIELDS if f not in e]
        if missing:
            skipped.append(dict(sample_id=sid, task=task, reason=f"missing fields {missing} in {path}"))
            continue
        options, answer = list(e["options"]), e["answer"]
        reason = not_an_index(answer, len(options))
        if reason:
            skipped.append(dict(sample_id=sid, task=task, reason=reason))
            continue
        video = root / "videos" / str(e["demonstration_type"]) / f"{e['key']}.mp4"
        out.append(Question(dataset, task, sid, e["question"], options, answer, str(video)))
    return out, skipped

"""TVBench / MVBench annotation format: json/<task>.json = [{video, question, candidates, answer,
start?, end?}], videos under video/<task>/. The synthetic benchmark is written in this format."""

from __future__ import annotations

from pathlib import Path

from vlmflow.data import read_json
from vlmflow.question import Question

STANDARD_FIELDS = {"video", "question", "candidates", "answer", "start", "end"}


def annotation_path(root: str | Path, task: str) -> Path:
    return Path(root) / "json" / f"{task}.json"


def load_task(root: str | Path, task: str, dataset: str = "tvbench") -> tuple[list[Question], list[dict]]:
    """Questions of one task, and the entries skipped with their reason."""
    root = Path(root)
    path = annotation_path(root, task)
    entries = read_json(path, "TVBench", list)
    out, skipped = [], []
    for i, e in enumerate(entries):
        sid = f"{task}_{i:04d}"
        missing = [k for k in ("video", "question", "candidates", "answer") if k not in e]
        if missing:
            skipped.append(dict(sample_id=sid, task=task, reason=f"missing fields {missing} in {path}"))
            continue
        if e["answer"] not in e["candidates"]:
            skipped.append(
                dict(sample_id=sid, task=task, reason=f"answer {e['answer']!r} is not among the candidates")
            )
            continue
        bounds = (float(e["start"]), float(e["end"])) if "start" in e and "end" in e else None
        # further scalar fields (e.g. the object an open-ended answer prompt names) fill prompt templates
        extra = {k: v for k, v in e.items() if k not in STANDARD_FIELDS and isinstance(v, (str, int, float))}
        out.append(
            Question(
                dataset,
                task,
                sid,
                e["question"],
                list(e["candidates"]),
                e["candidates"].index(e["answer"]),
                str(root / "video" / task / e["video"]),
                bounds,
                params=extra,
            )
        )
    return out, skipped

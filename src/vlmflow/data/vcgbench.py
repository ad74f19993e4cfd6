"""VCGBench's released format (the Video-ChatGPT benchmark): Benchmarking_QA/<task>.json with the
tasks generic_qa and temporal_qa ([{Q, A, video_name}]) and consistency_qa ([{Q1, Q2, A,
video_name}]: each record gives two questions, `<i>_q1` and `<i>_q2`), videos
Test_Videos/<video_name> with the extension they have (.mp4, .mkv, .avi, .mov). Open-ended: no
options; the record's answer `A` is kept as the reference (the knockouts never read it). The paper's
open-ended flow uses temporal_qa, with Video-ChatGPT's system prompt, the question as written (no
`Question:` label) and no answer pre-fill."""

from __future__ import annotations

from pathlib import Path

from vlmflow.data import read_json
from vlmflow.question import Question

TASKS = ("consistency_qa", "generic_qa", "temporal_qa")  # task ids 0, 1, 2: alphabetical
EXTENSIONS = (".mp4", ".mkv", ".avi", ".mov", ".MP4")


def annotation_path(root: str | Path, task: str) -> Path:
    return Path(root) / "Benchmarking_QA" / f"{task}.json"


def task_names(root: str | Path) -> list[str]:
    """The benchmark's three tasks, alphabetical (the paper's ids: temporal_qa is 2), and any other
    annotation file beside them."""
    folder = Path(root) / "Benchmarking_QA"
    return sorted(set(TASKS) | {p.stem for p in folder.glob("*.json")})


def find_video(root: Path, name: str) -> Path | None:
    """Test_Videos/<name>, as named or with the first extension present."""
    folder = root / "Test_Videos"
    if Path(name).suffix and (folder / name).is_file():
        return folder / name
    return next((folder / f"{name}{ext}" for ext in EXTENSIONS if (folder / f"{name}{ext}").is_file()), None)


def load_task(root: str | Path, task: str, dataset: str = "vcgbench") -> tuple[list[Question], list[dict]]:
    """The questions of one task in file order (consistency_qa: both questions of each record), and
    the records skipped with their reason."""
    root = Path(root)
    path = annotation_path(root, task)
    keys = ("Q1", "Q2") if task == "consistency_qa" else ("Q",)
    out, skipped = [], []
    for i, e in enumerate(read_json(path, "VCGBench", list)):
        ids = [f"{task}_{i:04d}" + (f"_{k.lower()}" if len(keys) > 1 else "") for k in keys]
        missing = [k for k in (*keys, "A", "video_name") if not isinstance(e, dict) or k not in e]
        if missing:
            skipped += [
                dict(sample_id=s, task=task, reason=f"missing fields {missing} in {path}") for s in ids
            ]
            continue
        video = find_video(root, str(e["video_name"]))
        if video is None:
            reason = (
                f"video {e['video_name']!r} not found under {root / 'Test_Videos'} (tried {list(EXTENSIONS)})"
            )
            skipped += [dict(sample_id=s, task=task, reason=reason) for s in ids]
            continue
        for sid, key in zip(ids, keys):
            # the reference answer is the one "candidate": open-ended records have no options
            out.append(Question(dataset, task, sid, str(e[key]), [str(e["A"])], 0, str(video)))
    return out, skipped

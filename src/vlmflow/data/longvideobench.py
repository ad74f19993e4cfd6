"""LongVideoBench's released format: lvb_val.json = [{video_id, id, question, candidates (up to 5),
correct_choice (0-based), question_category (the task, e.g. "O2E"), duration, video_path,
subtitle_path, ...}], videos under videos/<video_path>. No subtitles are read (the paper's
knockouts run without them). Each question's clip is [0, duration] with the record's duration (not
the file's), which the paper's LongVideoBench frame rule (`frame_sampling: lvb_stride`) reads.
Options: "(A) ..." in the LLaVA-style prompt, "A. ..." in VideoLLaMA3's (its own loader's
`option_letters_full`)."""

from __future__ import annotations

from pathlib import Path

from vlmflow.data import not_an_index, read_json
from vlmflow.question import Question

FIELDS = ("id", "question", "candidates", "correct_choice", "question_category", "duration", "video_path")
OPTION_STYLE = {"default": "paren", "videollama3": "dot"}


def annotation_path(root: str | Path, task: str) -> Path:
    return Path(root) / "lvb_val.json"


def task_names(root: str | Path) -> list[str]:
    """Every question category of the file, in alphabetical order (the paper's task ids)."""
    entries = read_json(annotation_path(root, ""), "LongVideoBench", list)
    return sorted({e["question_category"] for e in entries if "question_category" in e})


def load_task(
    root: str | Path, task: str, dataset: str = "longvideobench"
) -> tuple[list[Question], list[dict]]:
    """The questions of one category in file order, and the entries skipped with their reason."""
    root = Path(root)
    path = annotation_path(root, task)
    out, skipped = [], []
    for i, e in enumerate(read_json(path, "LongVideoBench", list)):
        if e.get("question_category") != task:
            continue
        sid = str(e.get("id", f"{task}_{i:05d}"))
        missing = [f for f in FIELDS if f not in e]
        if missing:
            skipped.append(dict(sample_id=sid, task=task, reason=f"missing fields {missing} in {path}"))
            continue
        options, answer = list(e["candidates"]), e["correct_choice"]
        reason = not_an_index(answer, len(options))
        if reason:
            skipped.append(dict(sample_id=sid, task=task, reason=reason))
            continue
        video = str(root / "videos" / e["video_path"])
        out.append(
            Question(
                dataset,
                task,
                sid,
                e["question"],
                options,
                answer,
                video,
                (0.0, float(e["duration"])),
                dict(option_style=OPTION_STYLE),
            )
        )
    return out, skipped

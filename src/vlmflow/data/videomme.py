"""Video-MME's released format: videomme/test-00000-of-00001.parquet with one row per question
(video_id, duration, domain, sub_category, url, videoID, question_id, task_type (the task, e.g.
"Action Recognition"), question, options (already "A. ..."), answer (a letter)); the video of a row
is data/<videoID> (or videos/<videoID>) with the extension it has: .mp4, .MP4 or .mkv. No subtitles.
The prompt shows the options as written ("A. ...") and pre-fills `Best option:`."""

from __future__ import annotations

from pathlib import Path

from vlmflow.prompt import LETTERS
from vlmflow.question import Question

COLUMNS = ("videoID", "question_id", "task_type", "question", "options", "answer")
VIDEO_DIRS = ("data", "videos")
EXTENSIONS = (".mp4", ".MP4", ".mkv")
PROMPT = dict(option_style="dot", answer_prefix="Best option:")


def annotation_path(root: str | Path, task: str) -> Path:
    return Path(root) / "videomme" / "test-00000-of-00001.parquet"


def _table(root: str | Path):
    import pandas as pd

    path = annotation_path(root, "")
    if not path.is_file():
        raise FileNotFoundError(
            f"Video-MME annotations not found: {path} (set the dataset's root in config.yaml)"
        )
    table = pd.read_parquet(path)
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: not Video-MME's table, columns {missing} missing")
    return table


def task_names(root: str | Path) -> list[str]:
    """Every task type of the table, in alphabetical order (the paper's task ids)."""
    return sorted(set(_table(root).task_type))


def find_video(root: Path, video_id: str) -> Path | None:
    for folder in VIDEO_DIRS:
        for ext in EXTENSIONS:
            if (root / folder / f"{video_id}{ext}").is_file():
                return root / folder / f"{video_id}{ext}"
    return None


def load_task(root: str | Path, task: str, dataset: str = "videomme") -> tuple[list[Question], list[dict]]:
    """The questions of one task type in table order, and the rows skipped with their reason (a
    video not found is skipped, never given another row's video)."""
    root = Path(root)
    out, skipped = [], []
    for row in _table(root).itertuples():
        if row.task_type != task:
            continue
        sid = str(row.question_id)
        options = list(row.options)
        lettered = [o.split(".", 1) for o in options]  # "A. One." -> ["A", " One."]
        letters = [parts[0].strip() for parts in lettered]
        if letters != list(LETTERS[: len(options)]):
            skipped.append(
                dict(sample_id=sid, task=task, reason=f"options not lettered A., B., ...: {options}")
            )
            continue
        if row.answer not in letters:
            skipped.append(
                dict(
                    sample_id=sid, task=task, reason=f"answer {row.answer!r} is not among the option letters"
                )
            )
            continue
        video = find_video(root, row.videoID)
        if video is None:
            where = ", ".join(f"{d}/{row.videoID}{{{','.join(EXTENSIONS)}}}" for d in VIDEO_DIRS)
            skipped.append(dict(sample_id=sid, task=task, reason=f"video not found: {root}/{where}"))
            continue
        candidates = [parts[1].strip() for parts in lettered]
        out.append(
            Question(
                dataset,
                task,
                sid,
                row.question,
                candidates,
                letters.index(row.answer),
                str(video),
                None,
                dict(PROMPT),
            )
        )
    return out, skipped

"""Benchmark loaders, frame sampling and the synthetic benchmark.

Every loader turns its benchmark's annotation format into `VideoQuestion` records plus the entries
it skipped, each with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class VideoQuestion:
    """A question with where its video is: the loader's output, before frames are decoded."""

    sample_id: str
    task: str
    question: str
    candidates: list[str]
    answer_index: int
    video: str
    bounds: tuple[float, float] | None  # clip [start, end] in seconds, None = whole video


def read_json(path, what: str, expected: type):
    """Parse an annotation file; a missing, malformed or wrongly shaped file is named with the fix."""
    import json

    if not path.is_file():
        raise FileNotFoundError(f"{what} annotations not found: {path} "
                                "(set the dataset's root in config.yaml)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(data, expected):
        raise ValueError(f"{path}: expected a JSON {expected.__name__}, got {type(data).__name__}")
    return data

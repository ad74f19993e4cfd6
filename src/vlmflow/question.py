"""The one question record: what every benchmark loader produces and every model adapter takes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field


@dataclass
class Question:
    """One multiple-choice video question, whatever its benchmark."""

    dataset: str
    task: str
    sample_id: str
    question: str
    candidates: list[str]  # option texts in display order
    answer_index: int  # index of the correct candidate
    video: str = ""  # the video file ("" for a generated question not written to disk)
    bounds: tuple[float, float] | None = None  # clip [start, end] in seconds, None = whole video
    params: dict = field(
        default_factory=dict
    )  # the generator's render parameters, or extra annotation fields

    @property
    def answer(self) -> str:
        return self.candidates[self.answer_index]

    @classmethod
    def from_row(cls, dataset: str, row) -> "Question":
        """From a row of a stage's questions table (results/<dataset>/questions/<task>.parquet)."""
        return cls(
            dataset,
            row.task,
            row.sample_id,
            row.question,
            list(row.candidates),
            int(row.answer_index),
            str(row.video),
            params=json.loads(getattr(row, "params", None) or "{}"),
        )

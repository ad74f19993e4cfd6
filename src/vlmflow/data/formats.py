"""The benchmark formats by name: where a task's annotations live, how to load it, its task id."""

from __future__ import annotations

from pathlib import Path

from vlmflow.data import tomato, tvbench

FORMATS = {"tvbench": tvbench, "tomato": tomato}  # each module: annotation_path(root, task), load_task


def format_module(fmt: str):
    if fmt not in FORMATS:
        raise ValueError(f"unknown dataset format {fmt!r}; supported: {sorted(FORMATS)}")
    return FORMATS[fmt]


def annotation_path(fmt: str, root: str, task: str) -> str:
    """Where a task's annotation file lives in a benchmark of this format."""
    return str(format_module(fmt).annotation_path(root, task))


def task_id(fmt: str, root: str, task: str) -> int:
    """The paper's task id: the position of the task among the benchmark's annotation files sorted
    by name (TVBench's Action Antonym is 0, Object Count 6)."""
    folder = Path(annotation_path(fmt, root, task)).parent
    return sorted(p.stem for p in folder.glob("*.json")).index(task)

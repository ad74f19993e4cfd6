"""The benchmark formats by name: where a task's annotations live, how to load it, its task id."""

from __future__ import annotations

from pathlib import Path

from vlmflow.data import longvideobench, tomato, tvbench, vcgbench, videomme

# each module: annotation_path(root, task), load_task(root, task); task_names(root) where the tasks
# share one annotation file
FORMATS = {
    "tvbench": tvbench,
    "tomato": tomato,
    "longvideobench": longvideobench,
    "videomme": videomme,
    "vcgbench": vcgbench,
}
# formats whose records have no options: only the open-ended flow runs on them
OPEN_ENDED_FORMATS = {"vcgbench"}


def format_module(fmt: str):
    if fmt not in FORMATS:
        raise ValueError(f"unknown dataset format {fmt!r}; supported: {sorted(FORMATS)}")
    return FORMATS[fmt]


def annotation_path(fmt: str, root: str, task: str) -> str:
    """Where a task's annotation file lives in a benchmark of this format."""
    return str(format_module(fmt).annotation_path(root, task))


def task_names(fmt: str, root: str) -> list[str]:
    """The benchmark's tasks in alphabetical order: its annotation files' names, or the task field
    of its one annotation file."""
    module = format_module(fmt)
    if hasattr(module, "task_names"):
        return module.task_names(root)
    folder = Path(annotation_path(fmt, root, "x")).parent
    return sorted(p.stem for p in folder.glob("*.json"))


def task_id(fmt: str, root: str, task: str) -> int:
    """The paper's task id: the position of the task among the benchmark's tasks sorted by name
    (TVBench's Action Antonym is 0, Object Count 6; LongVideoBench's O2E is 2 of its 17 categories)."""
    names = task_names(fmt, root)
    if task not in names:
        raise ValueError(f"{task!r} is not a task of this {fmt} benchmark at {root}; its tasks: {names}")
    return names.index(task)

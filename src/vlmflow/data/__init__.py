"""Benchmark loaders, frame sampling and the synthetic benchmark.

Every loader turns its benchmark's annotation format into `vlmflow.question.Question` records plus
the entries it skipped, each with its reason.
"""

from __future__ import annotations


def read_json(path, what: str, expected: type):
    """Parse an annotation file; a missing, malformed or wrongly shaped file is named with the fix."""
    import json

    if not path.is_file():
        raise FileNotFoundError(
            f"{what} annotations not found: {path} (set the dataset's root in config.yaml)"
        )
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(data, expected):
        raise ValueError(f"{path}: expected a JSON {expected.__name__}, got {type(data).__name__}")
    return data


def not_an_index(answer, n_options: int) -> str | None:
    """Why an annotated answer is not a 0-based index into its options, or None when it is one."""
    if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < n_options:
        return f"answer {answer!r} is not an index into its {n_options} options"
    return None

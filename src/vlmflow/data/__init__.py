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

"""Table stage: per-task tables gathered into one, and the accuracy tables (baseline, open-ended)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from vlmflow.io import atomic_path, write_parquet
from vlmflow.jobs import Job
from vlmflow.stats import open_ended_accuracy


@dataclass(frozen=True)
class GatherJob:
    """What a gathering job reads besides its inputs: the names of what it gathers (a dataset's
    tasks, or the (dataset, model) runs), so that a changed list reruns it and a changed split into
    parts does not."""

    parts: tuple[str, ...]

    @classmethod
    def of(cls, s, wc, parts) -> "GatherJob":
        return cls(tuple(parts(wc) if callable(parts) else parts))


def _read(job: Job) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(p) for p in job.input.paths()], ignore_index=True)


def gather(job: Job) -> None:
    """Concatenate the input tables into the one output table (atomically)."""
    write_parquet(_read(job), job.output.paths()[0])


def accuracy_table(job: Job) -> None:
    """Baseline accuracy per dataset, model and task, with chance level."""
    df = _read(job)
    table = (
        df.assign(chance=1 / df.n_options)
        .groupby(["dataset", "model", "task"], sort=False)
        .agg(n=("correct_base", "size"), accuracy=("correct_base", "mean"), chance=("chance", "mean"))
        .reset_index()
    )
    _write_csv(table, job)


def open_ended_table(job: Job) -> None:
    """First-token accuracy and exact match of the generated open-ended answers."""
    _write_csv(open_ended_accuracy(_read(job)), job)


def _write_csv(table: pd.DataFrame, job: Job) -> None:
    with atomic_path(job.output.paths()[0]) as tmp:
        table.to_csv(tmp, index=False, float_format="%.4f")
    print(table.to_string(index=False))

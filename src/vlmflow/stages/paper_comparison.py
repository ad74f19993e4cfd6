"""Paper comparison stage: the paper's published numbers beside the run's (`vlmflow.paper_comparison`)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from vlmflow.io import atomic_path
from vlmflow.jobs import Job
from vlmflow.paper_comparison import Run, compare

# the run's figures and tables the comparison reads, by the paper's name
FIGURES = {
    "fig2": "fig2_cross_frame",
    "fig3": "fig3_vql_to_ql",
    "fig9": "fig9_answer_probability",
    "table2": "table2_early_cross_frame",
}


@dataclass(frozen=True)
class PaperComparisonJob:
    """What the comparison reads besides the CSVs: each model's path, each dataset's format and
    whether the workflow generates it, and the (dataset, model) of each compared figure."""

    model_paths: tuple[tuple[str, str], ...]
    datasets: tuple[tuple[str, str, bool], ...]
    figures: tuple[tuple[str, str, str], ...]  # (paper name, dataset, model)

    @classmethod
    def of(cls, s, wc) -> "PaperComparisonJob":
        figs = tuple(
            (short, s.figures[name].dataset, s.figures[name].model)
            for short, name in FIGURES.items()
            if name in s.figures
        )
        return cls(
            tuple((n, m.load.path) for n, m in s.models.items()),
            tuple((n, d.format, d.generate is not None) for n, d in s.datasets.items()),
            figs,
        )


def write_comparison(job: Job) -> None:
    """`job.output.table`: one row per published number (named inputs: table3, fig2, ... where run)."""
    c = job.settings
    run = Run(
        dict(c.model_paths), {n: (f, g) for n, f, g in c.datasets}, {k: (d, m) for k, d, m in c.figures}
    )
    tables = {name: pd.read_csv(job.input[name]) for name in ("table3", *FIGURES) if name in job.input}
    table = compare(tables, run)
    with atomic_path(job.output.table) as tmp:
        table.to_csv(tmp, index=False)
    counts = table.verdict.value_counts().to_dict()
    print(f"[paper_comparison] {len(table)} published numbers: {counts}", flush=True)

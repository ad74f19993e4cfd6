"""Figure stage: what a figure or table job reads. The drawing itself is `vlmflow.plots`, called by
the figure notebooks of `workflow/notebooks/` (jupytext percent scripts the rules run)."""

from __future__ import annotations

from dataclasses import dataclass

from vlmflow.jobs import Job
from vlmflow.knockout.spec import Experiment
from vlmflow.settings import Figure


@dataclass(frozen=True)
class FigureJob:
    """One figure: its config entry (models, task, options), the tasks it draws (its own `tasks`,
    else its dataset's), and for a figure of an experiment's curves, that experiment."""

    figure: Figure
    tasks: tuple[str, ...]
    experiment: Experiment | None = None

    @classmethod
    def of(cls, s, wc, name: str) -> "FigureJob":
        f = s.figures[name]
        e = "open_ended_flow" if name == "figS_open_ended" else f.options.get("experiment")
        return cls(f, f.tasks or s.datasets[f.dataset].tasks, None if e is None else s.experiments[e])

    @property
    def options(self):
        return self.figure.options


def figure_job(sm, name: str | None = None) -> Job:
    """A figure notebook's job; with `name`, the notebook refuses to draw another figure's outputs
    (a rule that ran the wrong notebook would otherwise draw it silently)."""
    job = Job.from_snakemake(sm, FigureJob)
    if name is not None and job.settings.figure.name != name:
        raise RuntimeError(f"the notebook of {name} was run for {job.settings.figure.name}")
    return job

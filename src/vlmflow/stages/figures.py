"""Figure stage: what a figure or table job reads. The drawing itself is `vlmflow.plots`, called by
the figure notebooks of `workflow/notebooks/` (jupytext percent scripts the rules run)."""

from __future__ import annotations

from dataclasses import dataclass

from vlmflow.settings import Figure


@dataclass(frozen=True)
class FigureJob:
    """One figure: its config entry (models, task, options) and the tasks it draws (its own `tasks`,
    else its dataset's)."""

    figure: Figure
    tasks: tuple[str, ...]

    @classmethod
    def of(cls, s, wc, name: str) -> "FigureJob":
        f = s.figures[name]
        return cls(f, f.tasks or s.datasets[f.dataset].tasks)

    @property
    def options(self):
        return self.figure.options

"""The paper's published numbers beside the run's own (`figures/paper_comparison.csv`).

Each number the paper publishes (`paper_numbers.yaml` beside this file: Table 3's accuracies and
kept-edge shares, Table 2's accuracy drops, the minima of Figs. 2 and 3 and the layers they fall in,
Fig. 9's peak and last-layer probability) becomes one row, with the run's value read from the
figure's or table's CSV, their difference and a verdict:
- `agrees` / `differs`: the run measured the paper's checkpoint on the paper's benchmark, and its
  value is / is not within the tolerance the paper's rounding or reading allows;
- `other model or data`: the run drew that figure for another model or dataset (the toy: it shows
  the mechanism, not agreement);
- `not run`: the run has no such figure or row.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

NUMBERS = Path(__file__).with_name("paper_numbers.yaml")
TABLE_TOL, SHARE_TOL, PLOT_TOL = 0.05, 0.5, 3.0  # one decimal; a whole percent; read off a plot
COLUMNS = ["source", "quantity", "task", "dataset", "paper_model", "paper", "tolerance", "run_model"]
COLUMNS += ["run_dataset", "run", "difference", "verdict"]


def published() -> dict:
    import yaml

    return yaml.safe_load(NUMBERS.read_text())


@dataclass(frozen=True)
class Run:
    """What the run is: each model's path, each dataset's format and whether it is generated, and
    the (dataset, model) each comparable figure was drawn for."""

    model_paths: dict[str, str]
    datasets: dict[str, tuple[str, bool]]
    figures: dict[str, tuple[str, str]]  # figure -> (dataset, model)

    def is_papers(
        self, paper_model: str, model: str, paper_dataset: str, dataset: str, numbers: dict
    ) -> bool:
        """The run's (model, dataset) is the paper's checkpoint on the paper's benchmark."""
        name = numbers["models"][paper_model].split("/")[-1].lower()
        fmt, generated = self.datasets.get(dataset, ("", True))
        path = self.model_paths.get(model, "").rstrip("/").lower()
        return path.split("/")[-1] == name and fmt == numbers["datasets"][paper_dataset] and not generated


def _row(
    source,
    quantity,
    task,
    dataset,
    paper_model,
    paper,
    tol,
    run_model="",
    run_dataset="",
    run=None,
    verdict="not run",
):
    diff = None if run is None or isinstance(paper, str) else run - paper
    return dict(
        source=source,
        quantity=quantity,
        task=task,
        dataset=dataset,
        paper_model=paper_model,
        paper=paper,
        tolerance=tol,
        run_model=run_model,
        run_dataset=run_dataset,
        run=run,
        difference=diff,
        verdict=verdict,
    )


def _verdict(same: bool, ok: bool) -> str:
    return ("agrees" if ok else "differs") if same else "other model or data"


def _figure_rows(source, name, quantity, paper_model, tasks, run: Run, numbers, read) -> list[dict]:
    """Rows of one figure's numbers; `read(task)` -> (run value or None, within tolerance) per task,
    `tasks` = task -> (paper value, tolerance text)."""
    rows = []
    where = run.figures.get(name)
    for task, (paper, tol) in tasks.items():
        if where is None:
            rows.append(_row(source, quantity, task, "tvbench", paper_model, paper, tol))
            continue
        dataset, model = where
        value, ok = read(task)
        if value is None:
            rows.append(_row(source, quantity, task, "tvbench", paper_model, paper, tol, model, dataset))
            continue
        same = run.is_papers(paper_model, model, "tvbench", dataset, numbers)
        rows.append(
            _row(
                source,
                quantity,
                task,
                "tvbench",
                paper_model,
                paper,
                tol,
                model,
                dataset,
                value,
                _verdict(same, ok),
            )
        )
    return rows


def _extreme(curve: pd.DataFrame, task: str, pick: str):
    """(value, layer) of a curve's minimum or maximum in one task, or (None, None)."""
    c = curve[curve.task == task]
    if c.empty:
        return None, None
    r = c.loc[c["mean"].idxmin() if pick == "min" else c["mean"].idxmax()]
    return float(r["mean"]), int(r["layer"])


def compare(tables: dict[str, pd.DataFrame | None], run: Run, numbers: dict | None = None) -> pd.DataFrame:
    """The comparison table from the run's CSVs (`tables`: table3, table2, fig2, fig3, fig9; None
    where the run has none)."""
    numbers = numbers or published()
    rows = _table3(tables.get("table3"), run, numbers)
    rows += _table2(tables.get("table2"), run, numbers)
    for fig, curve_of in (("fig2", _fig2_curve), ("fig3", None)):
        rows += _minima(fig, tables.get(fig), run, numbers, curve_of)
    rows += _fig9(tables.get("fig9"), run, numbers)
    return pd.DataFrame(rows, columns=COLUMNS)


def _table3(t, run: Run, numbers) -> list[dict]:
    rows = []
    for paper_model, entry in numbers["table3"].items():
        for setting in ("full", "pathway", "random"):
            for dataset, paper in zip(("tvbench", "tomato"), entry[setting]):
                rows.append(
                    _table3_row(
                        t, run, numbers, paper_model, dataset, f"{setting} accuracy (%)", paper, setting
                    )
                )
        rows.append(
            _table3_row(
                t, run, numbers, paper_model, "tvbench", "kept edges (%)", entry["kept_pct"], "pathway"
            )
        )
    return rows


def _table3_row(t, run, numbers, paper_model, dataset, quantity, paper, setting) -> dict:
    kept = quantity.startswith("kept")
    tol = f"+-{SHARE_TOL if kept else TABLE_TOL}"
    mine = (
        pd.DataFrame()
        if t is None
        else t[[run.is_papers(paper_model, m, dataset, d, numbers) for m, d in zip(t.model, t.dataset)]]
    )
    if len(mine):
        mine = mine[(mine.setting == setting) & ~mine.pathway.fillna("").str.startswith("searched")]
    if mine.empty:
        return _row("Table 3", quantity, "", dataset, paper_model, paper, tol)
    r = mine.iloc[0]
    value = float(r.kept_pct if kept else r.accuracy)
    ok = abs(value - paper) <= (SHARE_TOL if kept else TABLE_TOL)
    return _row(
        "Table 3",
        quantity,
        "",
        dataset,
        paper_model,
        paper,
        tol,
        r.model,
        r.dataset,
        value,
        _verdict(True, ok),
    )


def _table2(t, run: Run, numbers) -> list[dict]:
    entry, rows = numbers["table2"], []
    for column, quantity in (
        ("mc_drop", "accuracy drop (points)"),
        ("mc_drop_relative", "accuracy drop (relative %)"),
    ):
        tasks = {task: (v, f"+-{TABLE_TOL}") for task, v in entry["drop"].items()}
        where = run.figures.get("table2")
        mine = None if t is None or where is None else t[t.model == where[1]].set_index("task")

        def read(task, mine=mine, column=column):
            if mine is None or task not in mine.index:
                return None, False
            value = float(mine.loc[task, column])
            return value, abs(value - entry["drop"][task]) <= TABLE_TOL

        rows += _figure_rows("Table 2", "table2", quantity, entry["model"], tasks, run, numbers, read)
    return rows


def _fig2_curve(t: pd.DataFrame, model: str) -> pd.DataFrame:
    return t[t.model_label == model]


def _minima(fig, t, run: Run, numbers, curve_of) -> list[dict]:
    entry, rows = numbers[fig], []
    source = {"fig2": "Fig. 2", "fig3": "Fig. 3"}[fig]
    curves = {"cross-frame knockout": None} if fig == "fig2" else {k: k for k in entry if k != "model"}
    for label, block in curves.items():
        values = entry["minimum"] if fig == "fig2" else entry[block]
        where = run.figures.get(fig)
        curve = None
        if t is not None and where is not None:
            curve = curve_of(t, where[1]) if curve_of else t[t.block == block]
        for what in ("minimum (%)", "layer of the minimum"):
            if what.startswith("minimum"):
                tasks = {k: (v[0], f"+-{PLOT_TOL}") for k, v in values.items()}
            else:
                tasks = {k: (f"{v[1]}-{v[2]}", "the range") for k, v in values.items()}

            def read(task, curve=curve, what=what, values=values):
                if curve is None:
                    return None, False
                value, layer = _extreme(curve, task, "min")
                if value is None:
                    return None, False
                if what.startswith("minimum"):
                    return value, abs(value - values[task][0]) <= PLOT_TOL
                return layer, values[task][1] <= layer <= values[task][2]

            name = f"{label}: {what}" if fig == "fig3" else what
            rows += _figure_rows(source, fig, name, entry["model"], tasks, run, numbers, read)
    return rows


def _fig9(t, run: Run, numbers) -> list[dict]:
    entry, rows = numbers["fig9"], []
    where = run.figures.get("fig9")
    curve = None if t is None or where is None else t[t.option == "True option"]
    specs = {
        "true option's peak (%)": (
            {k: (f"{v[0]}-{v[1]}", "the range") for k, v in entry["peak"].items()},
            "peak",
        ),
        "layer of the peak": (
            {k: (f"{v[2]}-{v[3]}", "the range") for k, v in entry["peak"].items()},
            "peak_layer",
        ),
        "true option at the last layer (%)": (
            {k: (v, f"+-{PLOT_TOL}") for k, v in entry["last"].items()},
            "last",
        ),
    }
    for quantity, (tasks, kind) in specs.items():

        def read(task, kind=kind):
            if curve is None or curve[curve.task == task].empty:
                return None, False
            value, layer = _extreme(curve, task, "max")
            lo, hi, a, b = entry["peak"][task]
            if kind == "peak":
                return value, lo <= value <= hi
            if kind == "peak_layer":
                return layer, a <= layer <= b
            c = curve[curve.task == task]
            last = float(c.loc[c.layer.idxmax(), "mean"])
            return last, abs(last - entry["last"][task]) <= PLOT_TOL

        rows += _figure_rows("Fig. 9", "fig9", quantity, entry["model"], tasks, run, numbers, read)
    return rows

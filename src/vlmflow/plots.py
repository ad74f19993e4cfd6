"""One function per paper figure. Each reads tidy result tables only and writes PNG, PDF and the
CSV of exactly the plotted numbers."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from vlmflow.io import atomic_path  # noqa: E402
from vlmflow.stats import curve_table  # noqa: E402

PAPER_COLOURS = {  # Fig. 3 line colours
    "Video -> Question": "tab:purple",
    "Video -> Last": "tab:blue",
    "Question -> Last": "tab:orange",
    "Last -> Last": "tab:red",
}


def _save(fig, table: pd.DataFrame, stem: Path) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    for ext in ("png", "pdf"):
        with atomic_path(stem.with_suffix(f".{ext}")) as tmp:
            fig.savefig(tmp, format=ext, dpi=150, bbox_inches="tight")
    with atomic_path(stem.with_suffix(".csv")) as tmp:
        table.to_csv(tmp, index=False)
    plt.close(fig)


def curve_panels(
    df: pd.DataFrame,
    hue: str,
    stem: Path,
    tasks: list[str],
    titles: dict[str, str],
    palette=None,
    title: str = "",
) -> pd.DataFrame:
    """Per-task panels of mean % change vs layer with 95 % bootstrap bands."""
    table = curve_table(df, ["task", hue, "layer"])
    sns.set_theme(style="whitegrid", font_scale=0.9)
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.2 * len(tasks), 2.8), squeeze=False, sharex=True)
    hues = (
        list(dict.fromkeys(table[hue])) if palette is None else [h for h in palette if h in set(table[hue])]
    )
    colours = palette or dict(zip(hues, sns.color_palette(n_colors=len(hues))))
    for ax, task in zip(axes[0], tasks):
        t = table[table.task == task]
        for h in hues:
            c = t[t[hue] == h].sort_values("layer")
            if c.empty:
                continue
            ax.plot(c.layer, c["mean"], color=colours[h], label=h, lw=1.6)
            ax.fill_between(c.layer, c.ci_low, c.ci_high, color=colours[h], alpha=0.2, lw=0)
        ns = t.groupby(hue, sort=False)["n"].max()
        ax.set_title(titles.get(task, task))
        # one number where every curve has the same samples, else one per curve
        note = (
            f"{int(ns.iloc[0])}"
            if ns.nunique() == 1
            else (", ".join(f"{h}: {int(n)}" for h, n in ns.items()) or "0")
        )
        ax.text(0.98, 0.03, f"n = {note}", transform=ax.transAxes, ha="right", va="bottom", fontsize=7)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xlabel("Layer")
    axes[0][0].set_ylabel("% Change in Probability")
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes[0][1:]:
        h2, l2 = ax.get_legend_handles_labels()
        for h_, l_ in zip(h2, l2):
            if l_ not in labels:
                handles.append(h_)
                labels.append(l_)
    fig.legend(
        handles, labels, loc="lower center", ncol=len(labels), bbox_to_anchor=(0.5, -0.12), frameon=False
    )
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save(fig, table, stem)
    return table


def fig2_cross_frame(
    video: pd.DataFrame,
    image: pd.DataFrame,
    labels: tuple[str, str],
    stem: Path,
    tasks: list[str],
    titles: dict[str, str],
) -> pd.DataFrame:
    """Fig. 2: cross-frame knockout, VideoLLM (green) vs its ImageLLM base (pink)."""
    df = pd.concat([video.assign(model_label=labels[0]), image.assign(model_label=labels[1])])
    palette = {labels[0]: "tab:green", labels[1]: "tab:pink"}
    return curve_panels(
        df,
        "model_label",
        stem,
        tasks,
        titles,
        palette,
        "No cross-frame interactions: % change of the predicted answer's probability",
    )


def fig3_vql_to_ql(df: pd.DataFrame, stem: Path, tasks: list[str], titles: dict[str, str]) -> pd.DataFrame:
    """Fig. 3: Video/Question/Last -> Question/Last knockouts."""
    return curve_panels(
        df,
        "block",
        stem,
        tasks,
        titles,
        PAPER_COLOURS,
        "Cross-modal information flow: % change of the predicted answer's probability",
    )


def _setting_label(row) -> str:
    return {
        "full": "Full causal attention",
        "pathway": f"Effective pathways: {row.pathway}",
        "random": f"Random blocking (as many as {row.pathway})",
    }[row.setting]


def table3_effective_pathways(table: pd.DataFrame, stem: Path) -> pd.DataFrame:
    """Table 3 in the paper's layout: rows model x setting, per dataset the accuracy (random: mean
    +- sd over seeds), and the attention edges per sample with the kept share."""
    t = table.assign(label=table.apply(_setting_label, axis=1))
    datasets = list(dict.fromkeys(t.dataset))
    cells, rows = [], []
    for (model, label), g in t.groupby(["model", "label"], sort=False):
        g = g.set_index("dataset")
        acc = [
            (
                "-"
                if d not in g.index
                else f"{g.loc[d, 'accuracy']:.1f}"
                + (f" ± {g.loc[d, 'accuracy_sd']:.1f}" if g.loc[d, "seeds"] > 1 else "")
            )
            for d in datasets
        ]
        first = g.iloc[0]
        cells.append([model, label, f"{first.edges:,.0f} ({first.kept_pct:.0f} %)", *acc])
        rows.append(model)
    cols = ["Model", "Attention", f"# edges ({datasets[0]})", *[f"{d} acc. (%)" for d in datasets]]
    fig, ax = plt.subplots(figsize=(3.0 + 2.2 * len(cols), 0.45 * (len(cells) + 2)))
    ax.axis("off")
    tab = ax.table(cellText=cells, colLabels=cols, loc="center", cellLoc="left")
    tab.auto_set_font_size(False)
    tab.set_fontsize(8)
    tab.auto_set_column_width(list(range(len(cols))))
    ax.set_title("Effective pathways vs random blocking", fontsize=10)
    _save(fig, table, stem)
    return table


def pathways_tradeoff(table: pd.DataFrame, stem: Path) -> pd.DataFrame:
    """Accuracy against the share of attention edges kept, one panel per dataset."""
    t = table.assign(label=table.apply(_setting_label, axis=1))
    datasets = list(dict.fromkeys(t.dataset))
    sns.set_theme(style="whitegrid", font_scale=0.9)
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 3.4), squeeze=False)
    labels = list(dict.fromkeys(t.label))
    colours = dict(zip(labels, sns.color_palette(n_colors=len(labels))))
    markers = dict(zip(dict.fromkeys(t.model), "osD^v<>"))
    for ax, d in zip(axes[0], datasets):
        for r in t[t.dataset == d].itertuples():
            ax.errorbar(
                r.kept_pct,
                r.accuracy,
                yerr=r.accuracy_sd if r.seeds > 1 else None,
                fmt=markers[r.model],
                color=colours[r.label],
                capsize=3,
                ms=7,
                label=f"{r.model}: {r.label}",
            )
        ax.set_title(d)
        ax.set_xlabel("Attention edges kept (%)")
        ax.set_xlim(0, 105)
        ax.set_ylim(0, 105)
    axes[0][0].set_ylabel("Accuracy (%)")
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(
        handles,
        names,
        loc="lower center",
        ncol=2,
        bbox_to_anchor=(0.5, -0.08 * (len(names) + 1) / 2),
        frameon=False,
        fontsize=8,
    )
    fig.tight_layout()
    _save(fig, table, stem)
    return table

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
    value: str = "rel_change",
    ylabel: str = "% Change in Probability",
    x: str = "layer",
) -> pd.DataFrame:
    """Per-task panels of the mean of `value` vs `x` with 95 % bootstrap bands."""
    table = curve_table(df, ["task", hue, x], value)
    sns.set_theme(style="whitegrid", font_scale=0.9)
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.2 * len(tasks), 2.8), squeeze=False, sharex=True)
    hues = (
        list(dict.fromkeys(table[hue])) if palette is None else [h for h in palette if h in set(table[hue])]
    )
    colours = palette or dict(zip(hues, sns.color_palette(n_colors=len(hues))))
    for ax, task in zip(axes[0], tasks):
        t = table[table.task == task]
        for h in hues:
            c = t[t[hue] == h].sort_values(x)
            if c.empty:
                continue
            ax.plot(c[x], c["mean"], color=colours[h], label=h, lw=1.6)
            ax.fill_between(c[x], c.ci_low, c.ci_high, color=colours[h], alpha=0.2, lw=0)
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
        ax.set_xlabel("Layer" if x == "layer" else "Depth (layer / number of layers)")
    axes[0][0].set_ylabel(ylabel)
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


def fig9_answer_probability(
    df: pd.DataFrame, stem: Path, tasks: list[str], titles: dict[str, str], depth: str = "layer"
) -> pd.DataFrame:
    """Fig. 9: probability (%) of the true option's letter vs the mean of the false ones, layer by
    layer (0 = embeddings), correctly answered samples; `depth: normalised` puts layer / L on x."""
    long = df.melt(
        id_vars=["task", "sample_id", "layer", "n_layers"],
        value_vars=["p_true", "p_false"],
        var_name="option",
        value_name="probability",
    )
    long["option"] = long.option.map({"p_true": "True option", "p_false": "False option"})
    long["probability"] *= 100
    x = "layer"
    if depth == "normalised":
        long["depth"] = long.layer / long.n_layers
        x = "depth"
    palette = {"True option": "tab:blue", "False option": "tab:red"}
    return curve_panels(
        long,
        "option",
        stem,
        tasks,
        titles,
        palette,
        "Layer-wise answer probability (last position, lm_head)",
        "probability",
        "% Probability",
        x,
    )


def lens_frequency(lens: pd.DataFrame, bins: list[tuple[int, int]], min_hits: int) -> pd.DataFrame:
    """Fig. 4's numbers: per projection, kind (spatial/temporal), keyword and layer bin, the number of
    video positions whose top-1 lens token is the keyword, normalised per keyword over the bins
    (keywords with fewer than `min_hits` hits dropped); "All Average" = mean of the normalised rows."""
    top1 = lens[lens["rank"] == 0]
    label = {layer: f"{a}-{b}" for a, b in bins for layer in range(a, b + 1)}
    rows = []
    for kind in ("spatial", "temporal"):
        hits = top1[top1[f"{kind}_word"].notna() & top1.layer.isin(label)]
        counts = (
            hits.assign(bin=hits.layer.map(label))
            .groupby(["projection", f"{kind}_word", "bin"])
            .size()
            .rename("hits")
            .reset_index()
            .rename(columns={f"{kind}_word": "word"})
        )
        for (proj, word), g in counts.groupby(["projection", "word"]):
            if g.hits.sum() < min_hits:
                continue
            full = g.set_index("bin").hits.reindex([f"{a}-{b}" for a, b in bins], fill_value=0)
            for b, n in full.items():
                rows.append(
                    dict(projection=proj, kind=kind, word=word, bin=b, hits=int(n), freq=n / full.sum())
                )
    out = pd.DataFrame(rows, columns=["projection", "kind", "word", "bin", "hits", "freq"])
    avg = out.groupby(["projection", "kind", "bin"], sort=False).agg(
        hits=("hits", "sum"), freq=("freq", "mean")
    )
    return pd.concat([out, avg.reset_index().assign(word="All Average")], ignore_index=True)


def fig4_logit_lens_freq(
    table: pd.DataFrame, bins: list[tuple[int, int]], stem: Path, n_words: int = 4
) -> None:
    """Fig. 4: normalised frequency of spatial and temporal keywords among the video tokens' top-1
    lens tokens, by layer bin; one row per projection (same axes), All Average + the most hit words."""
    projections = list(dict.fromkeys(table.projection)) or ["embedding"]
    order = [f"{a}-{b}" for a, b in bins]
    sns.set_theme(style="whitegrid", font_scale=0.8)
    fig, axes = plt.subplots(
        2 * len(projections),
        n_words + 1,
        figsize=(2.6 * (n_words + 1), 2.3 * 2 * len(projections)),
        squeeze=False,
        sharey=True,
    )
    for i, (proj, kind) in enumerate((p, k) for p in projections for k in ("spatial", "temporal")):
        t = table[(table.projection == proj) & (table.kind == kind)]
        top = (
            t[t.word != "All Average"].groupby("word").hits.sum().sort_values(ascending=False).index[:n_words]
        )
        for ax, word in zip(axes[i], ["All Average", *top]):
            w = t[t.word == word].set_index("bin").reindex(order)
            ax.bar(
                range(len(order)), w.freq.fillna(0), color="tab:blue" if kind == "spatial" else "tab:orange"
            )
            ax.set_title(
                f"{kind}: {word}" if word != "All Average" else f"{kind}: All Average ({proj})", fontsize=8
            )
            ax.set_xticks(range(len(order)), order, rotation=45, fontsize=7)
        for ax in axes[i][len(top) + 1 :]:
            ax.axis("off")
        axes[i][0].set_ylabel("Normalized Frequency")
    fig.suptitle("Logit lens on video tokens: keyword frequency by layer bin")
    fig.tight_layout()
    _save(fig, table, stem)


def fig5_logit_lens_frames(
    lens: pd.DataFrame, frames, bins: list[tuple[int, int]], stem: Path
) -> pd.DataFrame:
    """Fig. 5: the keywords the lens reads at each video token, written at the token's (t, h, w) cell
    on the sampled frames; one row per chosen layer bin (top-1 tokens, the bin's most frequent word
    per cell)."""
    import numpy as np

    T = frames.shape[0]
    top1 = lens[(lens["rank"] == 0)].copy()
    top1["word"] = top1.spatial_word.fillna(top1.temporal_word)
    top1["kind"] = np.where(top1.spatial_word.notna(), "spatial", "temporal")
    H, W = int(top1.h.max()) + 1, int(top1.w.max()) + 1
    rows = []
    for a, b in bins:
        hit = top1[top1.layer.between(a, b) & top1.word.notna()]
        for (t, h, w), g in hit.groupby(["t", "h", "w"]):
            word = g.word.value_counts().index[0]
            rows.append(
                dict(
                    bin=f"{a}-{b}",
                    t=t,
                    h=h,
                    w=w,
                    word=word,
                    kind=g[g.word == word].kind.iloc[0],
                    layers_hit=int((g.word == word).sum()),
                )
            )
    table = pd.DataFrame(rows, columns=["bin", "t", "h", "w", "word", "kind", "layers_hit"])
    fig, axes = plt.subplots(len(bins), T, figsize=(1.6 * T, 1.8 * len(bins)), squeeze=False)
    S = frames.shape[1]
    for i, (a, b) in enumerate(bins):
        for t in range(T):
            ax = axes[i][t]
            ax.imshow(frames[t], extent=(0, W, H, 0))
            ax.set_xticks([])
            ax.set_yticks([])
            for r in table[(table.bin == f"{a}-{b}") & (table.t == t)].itertuples():
                ax.text(
                    r.w + 0.5,
                    r.h + 0.5,
                    r.word,
                    ha="center",
                    va="center",
                    fontsize=5,
                    color="yellow" if r.kind == "spatial" else "cyan",
                    bbox=dict(facecolor="black", alpha=0.5, lw=0, pad=0.5),
                )
            if t == 0:
                ax.set_ylabel(f"layers {a}-{b}", fontsize=8)
            if i == 0:
                ax.set_title(f"frame {t + 1}", fontsize=8)
    fig.suptitle(f"Logit lens on video tokens (yellow: spatial, cyan: temporal words); frames {S} px")
    fig.tight_layout()
    _save(fig, table, stem)
    return table


def fig6_attention_maps(
    att: pd.DataFrame, frames, layers: tuple[int, int], heads: str, stem: Path
) -> pd.DataFrame:
    """Fig. 6: attention from question words to the video tokens, clean vs cross-frame blocked, averaged
    over `layers` (1-indexed inclusive), head mean or max, over the frames, colour log10(5e-5 + a)
    with each map's own range (viridis)."""
    import numpy as np

    a = att[(att.heads == heads) & att.layer.between(*layers)]
    table = a.groupby(["word", "condition", "t", "h", "w"], sort=False).attention.mean().reset_index()
    T, H, W = frames.shape[0], int(table.h.max()) + 1, int(table.w.max()) + 1
    keys = list(dict.fromkeys(zip(table.word, table.condition)))
    fig, axes = plt.subplots(len(keys), T, figsize=(1.6 * T, 1.7 * len(keys)), squeeze=False)
    for i, (word, cond) in enumerate(keys):
        m = table[(table.word == word) & (table.condition == cond)]
        grid = np.zeros((T, H, W))
        grid[m.t, m.h, m.w] = m.attention
        logged = np.log10(5e-5 + grid)
        for t in range(T):
            ax = axes[i][t]
            ax.imshow(frames[t], extent=(0, W, H, 0))
            ax.imshow(
                logged[t],
                extent=(0, W, H, 0),
                cmap="viridis",
                alpha=0.6,
                vmin=logged.min(),
                vmax=logged.max(),
            )
            ax.set_xticks([])
            ax.set_yticks([])
            if t == 0:
                ax.set_ylabel(f'"{word}"\n{cond}', fontsize=7)
    fig.suptitle(
        f"Attention from question words to video tokens, layers {layers[0]}-{layers[1]}, heads {heads}"
    )
    fig.tight_layout()
    _save(fig, table, stem)
    return table

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
from vlmflow.stats import all_anchor_rows, curve_table, paper_selection  # noqa: E402

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


RANDOM_SUFFIX = " (random edges)"  # a knockout's matched random-edge control, drawn dashed in its colour


def _hues(table: pd.DataFrame, hue: str, palette: dict | None) -> tuple[list, dict]:
    """Curves in palette order, each random-edge control after the real ones, and their colours."""
    present = list(dict.fromkeys(table[hue]))
    real = [h for h in present if not h.endswith(RANDOM_SUFFIX)]
    if palette is not None:
        real = [h for h in palette if h in set(real)]
    colours = dict(palette or zip(real, sns.color_palette(n_colors=max(1, len(real)))))
    hues = real + [h + RANDOM_SUFFIX for h in real if h + RANDOM_SUFFIX in set(present)]
    for h in hues[len(real) :]:
        colours[h] = colours[h[: -len(RANDOM_SUFFIX)]]
    return hues, colours


def _draw(ax, t: pd.DataFrame, hue: str, hues: list, colours: dict, x: str, ls: str = "-", band=True):
    for h in hues:
        c = t[t[hue] == h].sort_values(x)
        if c.empty:
            continue
        random = h.endswith(RANDOM_SUFFIX)
        ax.plot(
            c[x], c["mean"], color=colours[h], label=h, lw=1.1 if random else 1.6, ls="--" if random else ls
        )
        if band:
            ax.fill_between(c[x], c.ci_low, c.ci_high, color=colours[h], alpha=0.08 if random else 0.2, lw=0)
    ax.axhline(0, color="grey", lw=0.8)


def _n_note(ax, t: pd.DataFrame, hue: str) -> None:
    """One number where every curve has the same samples, else one per curve."""
    ns = t[~t[hue].str.endswith(RANDOM_SUFFIX)].groupby(hue, sort=False)["n"].max()
    note = (
        f"{int(ns.iloc[0])}"
        if ns.nunique() == 1
        else (", ".join(f"{h}: {int(n)}" for h, n in ns.items()) or "0")
    )
    ax.text(0.98, 0.03, f"n = {note}", transform=ax.transAxes, ha="right", va="bottom", fontsize=7)


def _legend(fig, axes) -> None:
    handles, labels = [], []
    for ax in axes:
        for h_, l_ in zip(*ax.get_legend_handles_labels()):
            if l_ not in labels:
                handles.append(h_)
                labels.append(l_)
    ncol = min(len(labels), 4) or 1
    fig.legend(handles, labels, loc="upper center", ncol=ncol, bbox_to_anchor=(0.5, 0.0), frameon=False)


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
    """Per-task panels of the mean of `value` vs `x` with 95 % bootstrap bands; a knockout's matched
    random-edge control ("<name> (random edges)") is drawn dashed in its colour."""
    table = curve_table(df, ["task", hue, x], value)
    sns.set_theme(style="whitegrid", font_scale=0.9)
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.2 * len(tasks), 2.8), squeeze=False, sharex=True)
    hues, colours = _hues(table, hue, palette)
    for ax, task in zip(axes[0], tasks):
        t = table[table.task == task]
        _draw(ax, t, hue, hues, colours, x)
        _n_note(ax, t, hue)
        ax.set_title(titles.get(task, task))
        ax.set_xlabel("Layer" if x == "layer" else "Depth (layer / number of layers)")
    axes[0][0].set_ylabel(ylabel)
    _legend(fig, axes[0])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save(fig, table, stem)
    return table


def experiment_curves(df: pd.DataFrame, stem: Path, tasks: list[str], titles: dict[str, str], title: str):
    """Any experiment's curves: one panel per task, one curve per block, 95 % bootstrap bands, each
    block's matched random-edge control dashed."""
    return curve_panels(df, "block", stem, tasks, titles, None, title)


def head_map(
    df: pd.DataFrame, stem: Path, tasks: list[str], titles: dict[str, str], title: str
) -> pd.DataFrame:
    """An experiment run once per head group: the mean % change of the predicted answer's probability
    by layer (window centre) and head group, one heatmap per block (rows) and task (columns); the
    random-edge controls' means are in the CSV, not drawn."""
    import numpy as np

    df = df.assign(base=[b.split(" [")[0] for b in df.block])
    table = curve_table(df, ["task", "base", "heads", "control", "layer"])
    real = table[~table.control.astype(bool)]
    blocks = list(dict.fromkeys(real.base))
    heads = sorted(dict.fromkeys(real.heads), key=lambda h: int(h.split()[-1].split("-")[0]))
    layers = sorted(real.layer.unique())
    sns.set_theme(style="white", font_scale=0.8)
    fig, axes = plt.subplots(
        len(blocks),
        len(tasks),
        figsize=(2.6 * len(tasks) + 1, 0.35 * len(heads) * len(blocks) + 1.2),
        squeeze=False,
        layout="constrained",
    )
    lim = float(np.nanmax(np.abs(real["mean"]))) if len(real) else 1.0
    for i, block in enumerate(blocks):
        for j, task in enumerate(tasks):
            ax = axes[i][j]
            t = real[(real.base == block) & (real.task == task)]
            grid = t.pivot_table(index="heads", columns="layer", values="mean").reindex(
                index=heads, columns=layers
            )
            im = ax.imshow(grid.values, cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
            ax.set_xticks(range(len(layers)), layers, fontsize=6)
            ax.set_yticks(range(len(heads)), heads if j == 0 else [""] * len(heads), fontsize=6)
            ax.set_title(f"{titles.get(task, task)}" + (f"\n{block}" if j == 0 else ""), fontsize=7)
            if i == len(blocks) - 1:
                ax.set_xlabel("Layer (window centre)")
        bar = fig.colorbar(im, ax=list(axes[i]), fraction=0.02, pad=0.01)
        bar.set_label("% change", fontsize=6)
    fig.suptitle(title)
    _save(fig, table, stem)
    return table


PAIR_COLOURS = [("tab:green", "tab:pink"), ("tab:blue", "tab:orange"), ("tab:olive", "tab:purple")]


def fig2_cross_frame(
    pairs: list[tuple[pd.DataFrame, pd.DataFrame | None, tuple[str, str | None]]],
    stem: Path,
    tasks: list[str],
    titles: dict[str, str],
) -> pd.DataFrame:
    """Fig. 2: cross-frame knockout, each VideoLLM (green, blue, ...) vs its ImageLLM base (pink,
    orange, ...); `pairs` = (VideoLLM rows, image base rows or None, their labels)."""
    if len(pairs) > len(PAIR_COLOURS):
        raise ValueError(f"Fig. 2 draws at most {len(PAIR_COLOURS)} model pairs, got {len(pairs)}")
    parts, palette = [], {}
    for (video, image, labels), colours in zip(pairs, PAIR_COLOURS):
        parts.append(video.assign(model_label=labels[0]))
        if image is not None:
            parts.append(image.assign(model_label=labels[1]))
        palette.update((label, c) for label, c in zip(labels, colours) if label is not None)
    df = pd.concat(parts)
    if "control" in df:
        df["model_label"] = df.model_label.where(~df.control.astype(bool), df.model_label + RANDOM_SUFFIX)
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


FIG7_COLOURS = {
    "Non-option question -> Last": "tab:purple",
    "True option -> Last": "tab:green",
    "False options -> Last": "tab:red",
}
FIG8_COLOURS = {
    "Video -> Non-option question": "tab:purple",
    "Non-option question -> True option": "tab:orange",
    "Video -> True option": "tab:blue",
}


def fig7_question_options_to_last(df: pd.DataFrame, stem: Path, tasks: list[str], titles: dict[str, str]):
    """Fig. 7: the non-option question, the true option and the false options -> last."""
    return curve_panels(
        df,
        "block",
        stem,
        tasks,
        titles,
        FIG7_COLOURS,
        "Question parts -> Last: % change of the answer's probability",
    )


def fig8_vq_to_true_option(df: pd.DataFrame, stem: Path, tasks: list[str], titles: dict[str, str]):
    """Fig. 8: video -> non-option question, non-option question -> true option, video -> true option."""
    return curve_panels(
        df,
        "block",
        stem,
        tasks,
        titles,
        FIG8_COLOURS,
        "Video / question -> True option: % change of the answer's probability",
    )


CHOSEN = {  # the failure figure names the option a route reaches by the model's choice
    "Non-option question -> True option": "Non-option question -> chosen option",
    "Video -> True option": "Video -> chosen option",
    "Non-option question -> False option": "Non-option question -> chosen option",
    "Video -> False option": "Video -> chosen option",
}
FAILURE_COLOURS = {
    **FIG7_COLOURS,
    "Video -> Non-option question": "tab:purple",
    "Non-option question -> chosen option": "tab:orange",
    "Video -> chosen option": "tab:blue",
}
FAILURE_ROWS = {"question_and_options_to_last": "Question parts -> Last"}  # else: -> chosen option


def failure_cases(
    wrong: pd.DataFrame, correct: pd.DataFrame, stem: Path, tasks: list[str], titles: dict[str, str]
):
    """Failure cases: on wrongly answered samples, question parts -> last (top row) and video /
    question -> the *predicted* false option (bottom row), solid with bands; the same knockouts on
    correctly answered samples (the true option being the chosen one) dotted. Random controls left out."""

    def tidy(df: pd.DataFrame, samples: str) -> pd.DataFrame:
        df = df[~df.block.str.endswith(RANDOM_SUFFIX)]
        return df.assign(
            route=df.block.replace(CHOSEN),
            row=df.experiment.map(FAILURE_ROWS).fillna("Video / question -> chosen option"),
            samples=samples,
        )

    df = pd.concat([tidy(wrong, "wrong"), tidy(correct, "correct")])
    table = curve_table(df, ["row", "task", "samples", "route", "layer"], "rel_change")
    rows = ["Question parts -> Last", "Video / question -> chosen option"]
    sns.set_theme(style="whitegrid", font_scale=0.9)
    fig, axes = plt.subplots(2, len(tasks), figsize=(3.2 * len(tasks), 5.6), squeeze=False, sharex=True)
    for r, row in enumerate(rows):
        for ax, task in zip(axes[r], tasks):
            t = table[(table.row == row) & (table.task == task)]
            for samples, ls in (("wrong", "-"), ("correct", ":")):
                s = t[t.samples == samples].assign(curve=lambda d: d.route + f" ({samples})")
                colours = {f"{h} ({samples})": c for h, c in FAILURE_COLOURS.items()}
                _draw(ax, s, "curve", list(colours), colours, "layer", ls=ls, band=samples == "wrong")
            n = t[t.samples == "wrong"].n.max()
            note = "no wrongly answered samples" if pd.isna(n) else f"n wrong = {int(n)}"
            ax.text(0.98, 0.03, note, transform=ax.transAxes, ha="right", va="bottom", fontsize=7)
            ax.set_title(titles.get(task, task) if r == 0 else "")
            ax.set_xlabel("Layer")
        axes[r][0].set_ylabel(f"{row}\n% Change in Probability")
    _legend(fig, axes.ravel())
    fig.suptitle("Failure cases: wrongly answered samples (solid) vs correctly answered ones (dotted)")
    fig.tight_layout()
    _save(fig, table, stem)
    return table


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
    over `layers` (1-indexed inclusive), head mean or max, over the frames (t = 1..T over the columns),
    colour 5e-5 + a on a log scale (the paper's log10(5e-5 + a)) with each row's own range (viridis),
    shown on the row's colour bar."""
    import numpy as np
    from matplotlib.colors import LogNorm

    floor = 5e-5
    a = att[(att.heads == heads) & att.layer.between(*layers)]
    table = a.groupby(["word", "condition", "t", "h", "w"], sort=False).attention.mean().reset_index()
    T, H, W = frames.shape[0], int(table.h.max()) + 1, int(table.w.max()) + 1
    keys = list(dict.fromkeys(zip(table.word, table.condition)))
    fig, axes = plt.subplots(
        len(keys), T, figsize=(1.6 * T + 1.4, 1.7 * len(keys)), squeeze=False, layout="constrained"
    )
    for i, (word, cond) in enumerate(keys):
        m = table[(table.word == word) & (table.condition == cond)]
        grid = np.zeros((T, H, W))
        grid[m.t, m.h, m.w] = m.attention
        shifted = floor + grid
        lo, hi = float(shifted.min()), float(shifted.max())
        norm = LogNorm(vmin=lo, vmax=hi if hi > lo else lo * 1.01)
        for t in range(T):
            ax = axes[i][t]
            ax.imshow(frames[t], extent=(0, W, H, 0))
            im = ax.imshow(shifted[t], extent=(0, W, H, 0), cmap="viridis", alpha=0.6, norm=norm)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"t = {t + 1}", fontsize=8)
            if t == 0:
                ax.set_ylabel(f'"{word}"\n{cond}', fontsize=7)
        bar = fig.colorbar(im, ax=list(axes[i]), fraction=0.02, pad=0.01)
        bar.set_label("5e-5 + attention (log)", fontsize=6)
        bar.ax.tick_params(labelsize=6)
    fig.suptitle(
        f"Attention from question words to video tokens, layers {layers[0]}-{layers[1]}, heads {heads}"
    )
    _save(fig, table, stem)
    return table


def table2_early_cross_frame(table: pd.DataFrame, examples: pd.DataFrame, stem: Path, titles: dict[str, str]):
    """Table 2: accuracy before -> after cross-frame attention is blocked in the first half of the
    layers (multiple choice; generated answers where asked), and example answers."""
    open_ended = "exact_before" in table
    cells = []
    for r in table.itertuples():
        row = [
            r.model,
            titles.get(r.task, r.task),
            f"{r.n}",
            f"{r.mc_before:.1f} -> {r.mc_after:.1f}",
            f"{-r.mc_drop:+.1f} ({-r.mc_drop_relative:+.0f} %)" if r.mc_before else "-",
        ]
        if open_ended:
            row += (
                ["-", "-"]
                if pd.isna(r.exact_before)
                else [
                    f"{r.first_token_before:.1f} -> {r.first_token_after:.1f}",
                    f"{r.exact_before:.1f} -> {r.exact_after:.1f}",
                ]
            )
        cells.append(row)
    cols = ["Model", "Task", "n", "MC acc. (%)", "MC change (rel.)"]
    if open_ended:
        cols += ["Open: first token (%)", "Open: exact (%)"]
    ex = [
        [
            r.model,
            titles.get(r.task, r.task),
            f"{r.answer_prompt} ...",
            r.reference,
            r.answer_before,
            r.answer_after,
        ]
        for r in examples.itertuples()
    ]
    n_rows = len(cells) + len(ex) + 5
    fig, axes = plt.subplots(
        2 if ex else 1,
        1,
        figsize=(13, 0.32 * n_rows),
        squeeze=False,
        gridspec_kw={"height_ratios": [len(cells) + 2, len(ex) + 2]} if ex else None,
    )
    blocked = table.blocked_layers.iloc[0] if len(table) else ""
    for ax, body, head, title in (
        (axes[0][0], cells, cols, f"Cross-frame attention blocked in layers {blocked} (the first half)"),
        *(
            [
                (
                    axes[1][0],
                    ex,
                    ["Model", "Task", "Answer prompt", "Reference", "Before", "After"],
                    "Example answers",
                )
            ]
            if ex
            else []
        ),
    ):
        ax.axis("off")
        tab = ax.table(cellText=body, colLabels=head, loc="center", cellLoc="left")
        tab.auto_set_font_size(False)
        tab.set_fontsize(8)
        tab.auto_set_column_width(list(range(len(head))))
        ax.set_title(title, fontsize=10)
    _save(fig, table, stem)
    return table


ANCHOR_COLOURS = {1: "tab:blue", 2: "tab:orange", 3: "tab:green"}


def figS_open_ended(df: pd.DataFrame, stem: Path, blocks: list[str]) -> pd.DataFrame:
    """The paper's open-ended flow figure: one panel per knockout block, one curve per anchor (the
    first, second and third anchor word of the answer), mean % change of the anchor's probability with
    95 % bootstrap bands; top row the paper's selection (samples with every anchor, then per block those
    whose mean change is <= 0), bottom row before that last filter."""
    parts = {"the paper's selection": paper_selection(df), "before its <= 0 filter": all_anchor_rows(df)}
    table = pd.concat(
        [
            curve_table(rows, ["block", "anchor", "layer"]).assign(selection=name)
            for name, rows in parts.items()
        ],
        ignore_index=True,
    )
    sns.set_theme(style="whitegrid", font_scale=0.9)
    fig, axes = plt.subplots(2, len(blocks), figsize=(3.0 * len(blocks), 5.2), squeeze=False, sharex=True)
    for r, name in enumerate(parts):
        for ax, block in zip(axes[r], blocks):
            t = table[(table.selection == name) & (table.block == block)]
            for n, c in t.groupby("anchor"):
                colour = ANCHOR_COLOURS.get(int(n), None)
                ax.plot(c.layer, c["mean"], color=colour, lw=1.6, label=f"anchor {int(n)}")
                ax.fill_between(c.layer, c.ci_low, c.ci_high, color=colour, alpha=0.12, lw=0)
            ax.axhline(0, color="grey", lw=0.8)
            n_samples = ", ".join(str(int(v)) for v in t.groupby("anchor")["n"].max().tolist()) or "0"
            ax.text(
                0.98, 0.03, f"n = {n_samples}", transform=ax.transAxes, ha="right", va="bottom", fontsize=7
            )
            ax.set_title(block if r == 0 else "")
            ax.set_xlabel("Layer")
        axes[r][0].set_ylabel(f"% change\n({name})")
    _legend(fig, axes[0])
    fig.suptitle("Open-ended generation flow: % change of the anchor word's probability")
    fig.tight_layout()
    _save(fig, table, stem)
    return table

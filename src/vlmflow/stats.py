"""Mean with a percentile bootstrap confidence interval, as seaborn draws the paper's bands."""

from __future__ import annotations

import numpy as np
import pandas as pd


def mean_ci(values, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    boots = x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(axis=1)
    lo, hi = np.percentile(boots, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
    return float(x.mean()), float(lo), float(hi)


def curve_table(df: pd.DataFrame, by: list[str], value: str = "rel_change", seed: int = 0) -> pd.DataFrame:
    """One row per group: mean, ci_low, ci_high, n (number of samples) and, for knockout rows
    (pred_base, pred_new), flip: the fraction of samples whose answer changes."""
    rows = []
    for key, g in df.groupby(by, sort=True):
        m, lo, hi = mean_ci(g[value], seed=seed)
        row = {
            **dict(zip(by, key if isinstance(key, tuple) else (key,))),
            "mean": m,
            "ci_low": lo,
            "ci_high": hi,
            "n": int(g[value].notna().sum()),
        }
        if {"pred_base", "pred_new"} <= set(g.columns):
            row["flip"] = float((g.pred_new != g.pred_base).mean())
        rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else [*by, "mean", "ci_low", "ci_high", "n"])


def pathway_table(df: pd.DataFrame) -> pd.DataFrame:
    """The paper's Table 3 layout: per model, setting and dataset, accuracy over all questions (%),
    attention edges per sample (summed over layers) and the kept percentage; random blocking as the
    mean and standard deviation over seeds."""
    per_seed = (
        df.groupby(["model", "dataset", "setting", "pathway", "seed"], sort=False)
        .agg(
            accuracy=("correct", "mean"),
            edges=("edges_kept", "mean"),
            full=("edges_full", "mean"),
            n=("sample_id", "size"),
        )
        .reset_index()
    )
    out = (
        per_seed.groupby(["model", "dataset", "setting", "pathway"], sort=False)
        .agg(
            accuracy=("accuracy", "mean"),
            accuracy_sd=("accuracy", "std"),
            edges=("edges", "mean"),
            full=("full", "mean"),
            n=("n", "first"),
            seeds=("seed", "size"),
        )
        .reset_index()
    )
    out["accuracy"] *= 100
    out["accuracy_sd"] = (out["accuracy_sd"] * 100).fillna(0.0)
    out["kept_pct"] = 100 * out["edges"] / out["full"]
    out.loc[out.setting != "random", "seeds"] = 0
    return out.drop(columns="full")


def open_ended_accuracy(answers: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, model and task: n, first-token accuracy and exact match of the unmodified model's
    generated answers (fractions)."""
    df = answers.dropna(subset=["answer_before"])
    return (
        df.groupby(["dataset", "model", "task"], sort=False)
        .agg(
            n=("sample_id", "size"),
            first_token_accuracy=("first_token_before", "mean"),
            exact_match=("exact_before", "mean"),
        )
        .reset_index()
    )


def early_cross_frame_table(answers: pd.DataFrame) -> pd.DataFrame:
    """The paper's Table 2 per model and task: multiple-choice accuracy (%) before and after early
    cross-frame blocking, the drop in points and relative to the accuracy before, the share of samples
    whose letter flips, and where answers were generated, first-token accuracy and exact match (%)
    before and after."""
    rows = []
    for (model, task), g in answers.groupby(["model", "task"], sort=False):
        before, after = 100 * g.correct_before.mean(), 100 * g.correct_after.mean()
        row = dict(
            model=model,
            task=task,
            blocked_layers=g.blocked_layers.iloc[0],
            n=len(g),
            mc_before=before,
            mc_after=after,
            mc_drop=before - after,
            mc_drop_relative=100 * (before - after) / before if before else float("nan"),
            mc_flip=(g.pred_before != g.pred_after).mean(),
        )
        if "answer_before" in g and g.answer_before.notna().any():
            o = g.dropna(subset=["answer_before"])
            row.update(
                first_token_before=100 * o.first_token_before.astype(float).mean(),
                first_token_after=100 * o.first_token_after.astype(float).mean(),
                exact_before=100 * o.exact_before.astype(float).mean(),
                exact_after=100 * o.exact_after.astype(float).mean(),
                open_changed=(o.answer_before != o.answer_after).mean(),
            )
        rows.append(row)
    return pd.DataFrame(rows)


def early_cross_frame_examples(answers: pd.DataFrame, per_task: int = 1) -> pd.DataFrame:
    """Example rows as in the paper's Table 2: per model and task, samples whose generated answer was
    right before and changed after blocking (else any changed, else the first)."""
    cols = [
        "model",
        "task",
        "sample_id",
        "question",
        "answer_prompt",
        "reference",
        "answer_before",
        "answer_after",
    ]
    if "answer_before" not in answers:
        return pd.DataFrame(columns=cols)
    df = answers.dropna(subset=["answer_before"])
    out = []
    for _, g in df.groupby(["model", "task"], sort=False):
        changed = g.answer_before != g.answer_after
        ranked = pd.concat([g[changed & g.exact_before.astype(bool)], g[changed], g]).drop_duplicates(
            "sample_id"
        )
        out.append(ranked.head(per_task))
    return pd.concat(out)[cols] if out else pd.DataFrame(columns=cols)


def paper_selection(rows: pd.DataFrame) -> pd.DataFrame:
    """The open-ended flow's rows the paper's figure keeps: the samples analysed at every anchor (n = 1..max),
    then per block the samples whose mean change over the layers is <= 0. The second filter can only
    make an effect look larger: the figure also draws the rows before it (`all_anchor_rows`)."""
    rows = all_anchor_rows(rows)
    mean = rows.groupby(["sample_id", "block"])["rel_change"].transform("mean")
    return rows[mean <= 0]


def all_anchor_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of the samples kept at every anchor."""
    n = rows["anchor"].nunique()
    per_sample = rows.groupby("sample_id")["anchor"].transform("nunique")
    return rows[per_sample == n]

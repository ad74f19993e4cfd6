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
    """One row per group: mean, ci_low, ci_high, n (number of samples)."""
    rows = []
    for key, g in df.groupby(by, sort=True):
        m, lo, hi = mean_ci(g[value], seed=seed)
        rows.append(
            {
                **dict(zip(by, key if isinstance(key, tuple) else (key,))),
                "mean": m,
                "ci_low": lo,
                "ci_high": hi,
                "n": int(g[value].notna().sum()),
            }
        )
    return pd.DataFrame(rows)


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

"""Pathway-pruning stage (the paper's Table 3): every sample answered with the full model, with only
the effective pathways, and with as many edges blocked at random in each layer (several seeds);
plus the search that derives kept windows from the knockout curves, and the exported spec.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from vlmflow.io import atomic_path, write_parquet
from vlmflow.jobs import Job, naming, peak_memory
from vlmflow.knockout.engine import KnockoutEngine, canary
from vlmflow.knockout.masks import Blocked, compile_knockout
from vlmflow.knockout.pathways import (
    ROUTES,
    Pathway,
    blocked_causal,
    causal_pairs,
    pathway_from_config,
    random_blocked,
)
from vlmflow.models.base import Adapter
from vlmflow.models.loading import model_provenance
from vlmflow.prompt import is_letter
from vlmflow.provenance import Stamp, sample_provenance
from vlmflow.settings import ModelLoad
from vlmflow.stages.features import cached_samples

# the knockout curve that tells where each route matters (experiments cross_frame and vql_to_ql)
ROUTE_CURVES = {
    "cross_frame": "No cross-frame interactions",
    "video_question": "Video -> Question",
    "question_last": "Question -> Last",
}


def load_pathway(path: str | Path) -> Pathway:
    with open(path) as fh:
        return Pathway.from_dict(yaml.safe_load(fh))


def save_pathway(p: Pathway, path: str | Path, **why) -> None:
    """The exportable artifact: the per-layer rule spec (and how it was found), never masks."""
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump({**p.to_dict(), **why}, sort_keys=False))


def pathways_for(configured, n_layers: int, searched: list) -> dict[str, Pathway]:
    """The pathways a model is evaluated with, by name: its configured `pathway` (a preset name, a
    spec file or an inline spec) and the searched ones (spec files)."""
    if configured is None:
        raise ValueError(
            "this model has no `pathway` in config.yaml (a preset, a spec file or an inline spec)"
        )
    value = configured
    if isinstance(value, str) and value.endswith((".yaml", ".yml")):
        value = load_pathway(value).to_dict()
    out = [pathway_from_config(value, n_layers)] + [
        pathway_from_config(load_pathway(f).to_dict(), n_layers) for f in searched
    ]
    return {p.name: p for p in out}


@dataclass(frozen=True)
class SearchJob:
    """What the search of kept windows reads (besides the knockout curves)."""

    threshold: float

    @classmethod
    def of(cls, s, wc) -> "SearchJob":
        return cls(s.pathways.search_threshold)


def search_task(job: Job) -> None:
    """The kept windows searched on the job's knockout curves, written as a pathway spec."""
    curves = pd.concat([pd.read_parquet(p) for p in job.input.files], ignore_index=True)
    n_layers = int(curves.layer.max())  # window centres run over every layer
    pathway, why = search_windows(curves, n_layers, f"searched on {job.dataset}", job.settings.threshold)
    save_pathway(pathway, job.output.spec, **why)
    print(pathway)


def search_windows(curves: pd.DataFrame, n_layers: int, name: str, threshold: float) -> tuple[Pathway, dict]:
    """Kept windows from knockout curves: a route is kept in every layer of every window whose knockout
    lowers the mean probability of the predicted answer by more than `threshold` % in some task; its
    range runs from the first such layer to the last. `curves`: knockout rows of the experiments
    cross_frame and vql_to_ql (columns block, task, layer = window centre, window, window_style,
    rel_change)."""
    ranges, used = {}, {}
    for route, block in ROUTE_CURVES.items():
        c = curves[curves.block == block]
        if c.empty:
            raise ValueError(f"no {block!r} knockout rows to search the {route} window in")
        if set(c.window_style) != {"center"}:
            raise ValueError("the window search reads center-style sweeps")
        k = int(c.window.iloc[0])
        means = c.groupby(["task", "layer"]).rel_change.mean()
        centres = sorted({layer for (_, layer), m in means.items() if m < -threshold})
        if not centres:  # the route never matters: keep it in one layer, where it hurts most
            centres = [int(means.groupby("layer").mean().idxmin())]
        lo, hi = max(1, centres[0] - k // 2), min(n_layers, centres[-1] + k // 2)
        ranges[route], used[route] = (lo, hi), centres
    return Pathway(name, n_layers, *(ranges[r] for r in ROUTES)), {
        "window_centres_used": used,
        "threshold_pct": threshold,
    }


@dataclass(frozen=True)
class PathwaysJob:
    """What evaluating a task's pathways reads: the model's configured pathway (a preset, a spec
    file, an inline spec), the random-blocking seeds."""

    model: ModelLoad
    pathway: Any
    seeds: tuple[int, ...]
    stamp: Stamp

    @classmethod
    def of(cls, s, wc) -> "PathwaysJob":
        m = s.models[wc.model]
        return cls(m.load, m.pathway, s.pathways.seeds, Stamp.of(s, wc.dataset))


def pathway_rows(
    engine: KnockoutEngine, sample, b, pathways: dict[str, Pathway], seeds: list[int], index: int, names: dict
) -> list[dict]:
    """One sample's rows: the full model, each pathway, and each pathway's random control per seed
    (seeded per seed, sample `index` and layer), with the answer, whether it is correct (`b.gt`) and
    the attention edges kept (summed over layers); `names` (dataset, task, ..., provenance) open
    every row (a row's own `seed`, the random blocking's, stands over the run's)."""
    adapter, L = engine.adapter, sample.layout
    clean = engine.clean(sample)
    full = causal_pairs(L.n_tokens)
    common = dict(names, gt=b.gt, edges_full=full * adapter.n_layers)

    def row(setting, pathway, seed, probs, kept):
        pred = int(probs.argmax())
        text = adapter.token_text(pred)
        return dict(
            common,
            setting=setting,
            pathway=pathway,
            seed=seed,
            pred=text,
            p_pred=float(probs[pred]),
            correct=is_letter(text, b.gt),
            edges_kept=kept,
        )

    rows = [row("full", "", -1, clean.probs, full * adapter.n_layers)]
    for name, p in pathways.items():
        compiled: dict = {}

        def layer_mask(l: int) -> Blocked:
            ko = p.knockout(l)
            if ko not in compiled:  # a handful of distinct rule sets across the layers
                compiled[ko] = compile_knockout(L, ko, sample.inputs_embeds.device)
            return compiled[ko]

        counts = [blocked_causal(layer_mask(l)) for l in range(adapter.n_layers)]
        kept = full * adapter.n_layers - sum(counts)
        rows.append(row("pathway", name, -1, engine.run_layerwise(sample, layer_mask, clean), kept))
        compiled.clear()
        for seed in seeds:

            def random_mask(l: int, s: int = seed * 100_003 + index) -> Blocked:
                return random_blocked(L, counts[l], s, l, sample.inputs_embeds.device)

            rows.append(row("random", name, seed, engine.run_layerwise(sample, random_mask, clean), kept))
    return rows


def evaluate_task(adapter: Adapter, job: Job) -> None:
    """Rows per sample x setting: full model, each pathway, and each pathway's random control per seed,
    with the answer, whether it is correct and the attention edges kept (summed over layers)."""
    cfg = job.settings
    pathways = pathways_for(cfg.pathway, adapter.n_layers, job.input.searched)
    provenance = model_provenance(adapter, cfg.model.path, cfg.stamp)
    base = pd.read_parquet(job.input.baseline)  # every sample, not only the correct ones
    engine = KnockoutEngine(adapter, backend=cfg.stamp.attention_backend)
    rows = []
    for k, (b, _, sample) in enumerate(cached_samples(adapter, job, base)):
        with naming(job, b.task, b.sample_id):
            if k == 0:
                canary(engine, sample)
            names = dict(
                dataset=job.dataset,
                task=b.task,
                model=job.model,
                sample_id=b.sample_id,
                **sample_provenance(provenance, sample.layout),
            )
            rows += pathway_rows(engine, sample, b, pathways, list(cfg.seeds), k, names)
            if (k + 1) % 10 == 0 or k + 1 == len(base):
                print(
                    f"[pathways] {job.model} {b.task}: sample {k + 1}/{len(base)} "
                    f"({sample.layout.n_tokens} tokens)",
                    flush=True,
                )
    print(f"[pathways] {job.model}: {peak_memory(engine)}", flush=True)
    write_parquet(pd.DataFrame(rows), job.output.table)

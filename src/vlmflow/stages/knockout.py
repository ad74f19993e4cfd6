"""Knockout stage: one experiment on one part of a task, every window of the sweep, tidy rows out."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import pandas as pd
import torch

from vlmflow.io import write_parquet
from vlmflow.jobs import Job
from vlmflow.knockout.engine import CleanRun, KnockoutEngine, canary
from vlmflow.knockout.masks import Blocked, compile_knockout, random_like
from vlmflow.knockout.reference import reference_probs
from vlmflow.knockout.spec import EXPERIMENTS, Condition, Knockout, sweep
from vlmflow.models.base import Adapter
from vlmflow.models.loading import model_provenance
from vlmflow.prompt import is_letter
from vlmflow.provenance import Stamp
from vlmflow.settings import ModelLoad
from vlmflow.stages.features import SAMPLE_MODES, cached_samples, select
from vlmflow.stages.frames import load_frames

RANDOM_SUFFIX = " (random edges)"


def random_control_probs(
    engine: KnockoutEngine, sample, conditions: list[Condition], seed: str, clean: CleanRun
) -> torch.Tensor:
    """Each condition's matched random-edge control -> [len(conditions), V] probabilities at the last
    position: in each layer of the window, as many random causal edges of the knockout's rows, drawn
    when the layer runs (seeded per sample, knockout, window and layer). Like the knockout itself, a
    control recomputes only the knockout's rows, from its window's first layer on (batched)."""
    out = torch.empty(len(conditions), clean.probs.shape[0], device=clean.probs.device)
    compiled: dict[Knockout, Blocked] = {}
    groups: dict[int, list] = {}  # first blocked row -> [(condition index, schedule, first layer)]
    for i, c in enumerate(conditions):
        if c.knockout not in compiled:
            compiled[c.knockout] = compile_knockout(sample.layout, c.knockout, sample.inputs_embeds.device)
        b = compiled[c.knockout]
        if b.empty or not c.window.layers:
            out[i] = clean.probs
            continue
        key = f"{seed}/{c.knockout.name}/{c.window.style}/{c.window.centre}"
        layers = set(c.window.layers)

        def schedule(l, b=b, key=key, layers=layers):
            return random_like(b, zlib.crc32(f"{key}/{l}".encode())) if l in layers else None

        groups.setdefault(b.q0, []).append((i, schedule, min(layers)))
    for q0, items in groups.items():
        where, schedules, starts = zip(*items)
        out[list(where)] = engine.run_layerwise_many(sample, list(schedules), clean, q0, list(starts))
    return out


@dataclass(frozen=True)
class Sweep:
    """A window style and size swept over every layer, on the samples of a mode: "center-w9" (the
    configured samples), "center-w9-wrong"."""

    style: str
    window: int
    samples: str  # correct | wrong | all

    @classmethod
    def parse(cls, name: str, default_samples: str) -> "Sweep":
        samples = default_samples
        if name.rsplit("-", 1)[-1] in SAMPLE_MODES:
            name, samples = name.rsplit("-", 1)
        style, window = name.rsplit("-w", 1)
        return cls(style, int(window), samples)

    @staticmethod
    def name(style: str, window: int, samples: str, default_samples: str) -> str:
        return f"{style}-w{window}" + ("" if samples == default_samples else f"-{samples}")


@dataclass(frozen=True)
class KnockoutJob:
    """What one knockout job reads: the model, the experiment, its sweep, the part of the task's
    samples (i, n), and the knockout settings."""

    model: ModelLoad
    experiment: str
    sweep: Sweep
    part: tuple[int, int]
    batch_size: int
    random_control: bool
    stamp: Stamp  # engine, attention backend, frames, seed (also the random controls' seed)

    @classmethod
    def of(cls, s, wc) -> "KnockoutJob":
        i, n = map(int, wc.part.split("of"))  # "2of4": the second of four contiguous parts
        return cls(
            s.models[wc.model].load,
            wc.experiment,
            Sweep.parse(wc.sweep, s.knockout.sample_mode),
            (i - 1, n),
            s.knockout.batch_size,
            s.knockout.random_control,
            Stamp.of(s, wc.dataset),
        )


def run_experiment(adapter: Adapter, job: Job) -> None:
    """Rows of every knockout of the experiment x every window of the sweep, for the samples of one
    part (i, n): the i-th of n contiguous slices of the selected samples. With `random_control`,
    each knockout also runs as its matched random-edge control (block "<name> (random edges)"): in
    each layer of the window, as many edges of the same query rows, drawn at random
    (`masks.random_like`, seeded per sample, knockout, window and layer)."""
    cfg = job.settings
    experiment, engine, seed = cfg.experiment, cfg.stamp.engine, cfg.stamp.seed
    if experiment not in EXPERIMENTS:
        raise ValueError(f"unknown knockout experiment {experiment!r}; known: {sorted(EXPERIMENTS)}")
    if engine not in ("fast", "reference"):
        raise ValueError(f"engine must be 'fast' or 'reference', got {engine!r}")
    conditions = [
        Condition(k, w)
        for k in EXPERIMENTS[experiment]
        for w in sweep(adapter.n_layers, cfg.sweep.window, cfg.sweep.style)
    ]
    base = select(pd.read_parquet(job.input.baseline), cfg.sweep.samples)
    i, n = cfg.part
    base = base.iloc[i * len(base) // n : (i + 1) * len(base) // n]
    frames = {}
    if engine == "reference":  # the paper's method reruns the vision tower on the frames
        ids = list(pd.read_parquet(job.input.questions).sample_id)
        frames = dict(zip(ids, load_frames(job.input.frames, ids)))
    fast = KnockoutEngine(adapter, backend=cfg.stamp.attention_backend, batch_size=cfg.batch_size)
    provenance = model_provenance(adapter, cfg.model.path, cfg.stamp)
    rows = []
    samples = cached_samples(adapter, job, base)
    checked = False  # the canary runs on the first sample analysed
    needs_choice = any(
        "predicted_option" in (e.source, e.target) for c in conditions for e in c.knockout.edges
    )
    for k, (b, q, sample) in enumerate(samples):
        if needs_choice and sample.layout.predicted_option is None:
            print(f"[knockout] {b.sample_id}: left out, its answer {b.pred_base!r} is not an option letter")
            continue
        if not checked:
            canary(fast, sample)
            checked = True
        clean = fast.clean(sample)
        if engine == "fast":
            probs = fast.run(sample, conditions, clean)
        else:
            chosen = sample.layout.predicted_option
            probs = torch.stack(
                [reference_probs(adapter, q, frames[b.sample_id], c, chosen) for c in conditions]
            )
        blocks = [c.knockout.name for c in conditions]
        if cfg.random_control:
            probs = torch.cat(
                [probs, random_control_probs(fast, sample, conditions, f"{seed}/{b.sample_id}", clean)]
            )
            blocks += [f"{c.knockout.name}{RANDOM_SUFFIX}" for c in conditions]
        p_new, p_new_gt = probs[:, b.pred_base_id].tolist(), probs[:, sample.gt_token].tolist()
        pred_new = [adapter.token_text(t) for t in probs.argmax(-1).tolist()]
        for c, block, pn, pg, pr in zip(
            conditions * (2 if cfg.random_control else 1), blocks, p_new, p_new_gt, pred_new
        ):
            rows.append(
                dict(
                    dataset=job.dataset,
                    task=b.task,
                    model=job.model,
                    sample_id=b.sample_id,
                    experiment=experiment,
                    block=block,
                    control=block.endswith(RANDOM_SUFFIX),
                    window=c.window.size,
                    window_style=c.window.style,
                    layer=c.window.centre + 1,
                    p_base=b.p_base,
                    p_new=pn,
                    rel_change=(pn - b.p_base) / b.p_base * 100,
                    p_base_gt=b.p_base_gt,
                    p_new_gt=pg,
                    rel_change_gt=(pg - b.p_base_gt) / b.p_base_gt * 100 if b.p_base_gt > 0 else float("nan"),
                    pred_base=b.pred_base,
                    pred_new=pr,
                    gt=b.gt,
                    correct_base=b.correct_base,
                    correct_new=is_letter(pr, b.gt),
                    **provenance,
                )
            )
        print(f"[knockout] {job.model} {experiment} {b.task}: sample {k + 1}/{len(base)}", flush=True)
    cols = (
        None
        if rows
        else ["dataset", "task", "model", "sample_id", "experiment", "block", "layer", "rel_change"]
    )
    write_parquet(pd.DataFrame(rows, columns=cols), job.output.table)

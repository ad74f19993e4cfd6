"""Knockout stage: one experiment on one part of a task, every window of the sweep, tidy rows out."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import pandas as pd
import torch

from vlmflow.io import write_parquet
from vlmflow.jobs import Job, naming, peak_memory
from vlmflow.knockout.engine import CleanRun, KnockoutEngine, canary
from vlmflow.knockout.masks import Blocked, compile_knockout, random_like
from vlmflow.knockout.reference import reference_probs
from vlmflow.knockout.spec import Condition, Experiment, Knockout, check_experiment, head_label, sweep
from vlmflow.models.base import Adapter
from vlmflow.models.loading import model_provenance
from vlmflow.prompt import is_letter
from vlmflow.provenance import Stamp, sample_provenance
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
    groups: dict[tuple, list] = {}  # (first blocked row, heads, mode) -> [(condition, schedule, start)]
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

        groups.setdefault((b.q0, c.knockout.heads, c.knockout.mode), []).append((i, schedule, min(layers)))
    for (q0, heads, mode), items in groups.items():
        where, schedules, starts = zip(*items)
        probs = engine.run_layerwise_many(sample, list(schedules), clean, q0, list(starts), heads, mode)
        out[list(where)] = probs
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
    """What one knockout job reads: the model, the experiment (its whole definition: editing it
    reruns its jobs), its sweep, the part of the task's samples (i, n), and the knockout settings."""

    model: ModelLoad
    experiment: Experiment
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
            s.experiments[wc.experiment],
            Sweep.parse(wc.sweep, s.knockout.sample_mode),
            (i - 1, n),
            s.knockout.batch_size,
            s.knockout.random_control,
            Stamp.of(s, wc.dataset),
        )


def experiment_conditions(adapter: Adapter, e: Experiment, sweep_: Sweep, model: str) -> list[Condition]:
    """The experiment's knockouts (one per head group with `head_groups`) x every window of the sweep,
    after the checks the config could not make before the model was loaded."""
    try:
        check_experiment(e, adapter.n_heads, adapter.facts.grid)
    except ValueError as err:
        raise ValueError(f"model {model!r}: {err}") from None
    if sweep_.window > adapter.n_layers:
        raise ValueError(
            f"model {model!r}, experiment {e.name!r}: a knockout window of {sweep_.window} layers is longer "
            f"than the model ({adapter.n_layers} layers); set its `window` in the config"
        )
    windows = sweep(adapter.n_layers, sweep_.window, sweep_.style)
    return [Condition(k, w) for k in e.head_blocks(adapter.n_heads) for w in windows]


NAME_COLUMNS = ["dataset", "task", "model", "sample_id", "experiment"]
ROW_COLUMNS = [
    "block",
    "heads",
    "control",
    "window",
    "window_style",
    "layer",
    "p_base",
    "p_new",
    "rel_change",
]
ROW_COLUMNS += [
    "p_base_gt",
    "p_new_gt",
    "rel_change_gt",
    "pred_base",
    "pred_new",
    "gt",
    "correct_base",
    "correct_new",
]


def knockout_rows(
    fast: KnockoutEngine,
    sample,
    b,
    conditions: list[Condition],
    probs: torch.Tensor,
    control_seed: str | None,
    clean: CleanRun | None = None,
) -> list[dict]:
    """One sample's rows of the results contract (less its names and provenance): per condition the
    probabilities and answers under the knockout (`probs` [len(conditions), V]) and, with a
    `control_seed`, under its matched random-edge control (from the sample's `clean` pass, run
    here when not given). `b`: the sample's baseline (task, sample_id, p_base, p_base_gt, pred_base,
    pred_base_id, gt, correct_base)."""
    adapter = fast.adapter
    blocks = [c.knockout.name for c in conditions]
    if control_seed is not None:
        clean = clean or fast.clean(sample)
        probs = torch.cat([probs, random_control_probs(fast, sample, conditions, control_seed, clean)])
        blocks += [f"{c.knockout.name}{RANDOM_SUFFIX}" for c in conditions]
    p_new, p_new_gt = probs[:, b.pred_base_id].tolist(), probs[:, sample.gt_token].tolist()
    pred_new = [adapter.token_text(t) for t in probs.argmax(-1).tolist()]
    rows = []
    for c, block, pn, pg, pr in zip(
        conditions * (len(blocks) // len(conditions)), blocks, p_new, p_new_gt, pred_new
    ):
        rows.append(
            dict(
                block=block,
                heads=head_label(c.knockout.heads),
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
            )
        )
    return rows


def run_experiment(adapter: Adapter, job: Job) -> None:
    """Rows of every knockout of the experiment x every window of the sweep, for the samples of one
    part (i, n): the i-th of n contiguous slices of the selected samples. With `random_control`,
    each knockout also runs as its matched random-edge control (block "<name> (random edges)"): in
    each layer of the window, as many edges of the same query rows, drawn at random
    (`masks.random_like`, seeded per sample, knockout, window and layer)."""
    cfg = job.settings
    e, engine, seed = cfg.experiment, cfg.stamp.engine, cfg.stamp.seed
    if engine not in ("fast", "reference"):
        raise ValueError(f"engine must be 'fast' or 'reference', got {engine!r}")
    conditions = experiment_conditions(adapter, e, cfg.sweep, job.model)
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
    checked = False  # the canary runs on the first sample analysed
    needs_choice = any(
        "predicted_option" in (edge.source, edge.target) for c in conditions for edge in c.knockout.edges
    )
    for k, (b, q, sample) in enumerate(cached_samples(adapter, job, base)):
        with naming(job, b.task, b.sample_id):
            if needs_choice and sample.layout.predicted_option is None:
                print(
                    f"[knockout] {b.sample_id}: left out, its answer {b.pred_base!r} is not an option letter"
                )
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
            control = f"{seed}/{b.sample_id}" if cfg.random_control else None
            names = dict(
                dataset=job.dataset, task=b.task, model=job.model, sample_id=b.sample_id, experiment=e.name
            )
            found = knockout_rows(fast, sample, b, conditions, probs, control, clean)
            rows += [{**names, **r, **sample_provenance(provenance, sample.layout)} for r in found]
            print(
                f"[knockout] {job.model} {e.name} {b.task}: sample {k + 1}/{len(base)} "
                f"({sample.layout.n_tokens} tokens)",
                flush=True,
            )
    print(f"[knockout] {job.model} {e.name}: {peak_memory(fast)}", flush=True)
    # an empty table (no sample of the mode) keeps the results contract's columns
    cols = None if rows else [*NAME_COLUMNS, *ROW_COLUMNS, *provenance]
    write_parquet(pd.DataFrame(rows, columns=cols), job.output.table)

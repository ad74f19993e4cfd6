"""Probing stage: answer probability by layer (Fig. 9), the logit lens on video tokens (Figs. 4, 5),
and attention maps from question words to the video (Fig. 6), from one clean forward per sample
(the cached video features, no vision rerun)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd
import torch

from vlmflow.io import write_parquet
from vlmflow.jobs import Job, naming, peak_memory
from vlmflow.knockout.engine import KnockoutEngine
from vlmflow.knockout.spec import EXPERIMENTS
from vlmflow.models.base import Adapter
from vlmflow.models.loading import model_provenance
from vlmflow.probes import first_subtoken, probe
from vlmflow.provenance import Stamp, sample_provenance
from vlmflow.question import Question
from vlmflow.settings import FrozenMap, ModelLoad
from vlmflow.stages.features import cached_samples, select


@dataclass(frozen=True)
class ProbesJob:
    """What the answer-probability and logit-lens probes of a task read."""

    model: ModelLoad
    final_norm: bool
    projections: tuple[str, ...]
    top_k: int
    words: FrozenMap  # spatial | temporal -> keywords (the dataset's lens_words)
    stamp: Stamp

    @classmethod
    def of(cls, s, wc) -> "ProbesJob":
        p = s.probes
        words = s.datasets[wc.dataset].lens_words
        return cls(
            s.models[wc.model].load, p.final_norm, p.projections, p.top_k, words, Stamp.of(s, wc.dataset)
        )


def _samples(adapter, job: Job):
    base = select(pd.read_parquet(job.input.baseline), "correct")
    for k, (b, q, sample) in enumerate(cached_samples(adapter, job, base)):
        yield k, len(base), b, q, sample


LENS_COLUMNS = [
    "sample_id",
    "projection",
    "final_norm",
    "layer",
    "position",
    "t",
    "h",
    "w",
    "rank",
    "token_id",
    "prob",
]


def lens_frame(sample_id: str, tops: dict, grid: tuple[int, int, int]) -> pd.DataFrame:
    """One sample's lens tokens {projection: (ids, probs) [L+1, n_video, k]} as rows: projection,
    layer, video position and its cell (t, h, w) in the sample's own `grid` (T, H, W), rank, token id
    and probability."""
    _, H, W = grid
    frames = []
    for projection, (ids, probs) in tops.items():  # [L+1, n_video, k]
        layer, pos, rank = torch.meshgrid(*(torch.arange(s) for s in ids.shape), indexing="ij")
        frames.append(
            pd.DataFrame(
                dict(
                    sample_id=sample_id,
                    projection=projection,
                    final_norm=projection == "lm_head",
                    layer=layer.flatten().numpy().astype("int16"),
                    position=pos.flatten().numpy().astype("int32"),
                    t=(pos.flatten() // (H * W)).numpy().astype("int16"),
                    h=(pos.flatten() % (H * W) // W).numpy().astype("int16"),
                    w=(pos.flatten() % W).numpy().astype("int16"),
                    rank=rank.flatten().numpy().astype("int8"),
                    token_id=ids.flatten().cpu().numpy().astype("int32"),
                    prob=probs.flatten().cpu().numpy().astype("float32"),
                )
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=LENS_COLUMNS)


def label_lens(df: pd.DataFrame, adapter: Adapter, words) -> pd.DataFrame:
    """Lens rows with each token's text and the spatial or temporal keyword (`words`: kind ->
    keywords) it is the first sub-token of."""
    vocab = {i: adapter.token_text(i) for i in df.token_id.unique().tolist()}
    df["token"] = df.token_id.map(vocab)
    for kind in ("spatial", "temporal"):
        first = {}
        for word in words.get(kind, []):
            first.setdefault(first_subtoken(adapter.tokenizer, word), word)
        df[f"{kind}_word"] = df.token_id.map(first)
    return df


def probe_task(adapter: Adapter, job: Job) -> None:
    """Per correctly answered sample one clean pass, then (a) per layer the correct letter's and the
    other letters' probability, (b) per projection, layer and video position the lens's top-k
    tokens, each marked with the spatial or temporal keyword it is the first sub-token of."""
    cfg = job.settings
    provenance = model_provenance(adapter, cfg.model.path, cfg.stamp)
    engine = KnockoutEngine(adapter, backend=cfg.stamp.attention_backend)
    answer, lens = [], []
    for k, n, b, q, sample in _samples(adapter, job):
        with naming(job, b.task, b.sample_id):
            common = dict(dataset=job.dataset, task=b.task, model=job.model, sample_id=b.sample_id)
            rows, tops = probe(engine, sample, cfg.final_norm, list(cfg.projections), cfg.top_k)
            answer += [
                dict(
                    common,
                    **r,
                    n_layers=adapter.n_layers,
                    final_norm=cfg.final_norm,
                    **sample_provenance(provenance, sample.layout),
                )
                for r in rows
            ]
            lens.append(lens_frame(b.sample_id, tops, sample.layout.grid))
            if (k + 1) % 20 == 0 or k + 1 == n:
                print(
                    f"[probes] {job.model} {b.task}: sample {k + 1}/{n} ({sample.layout.n_tokens} tokens)",
                    flush=True,
                )
    print(f"[probes] {job.model}: {peak_memory(engine)}", flush=True)
    write_parquet(pd.DataFrame(answer), job.output.answer)
    df = label_lens(
        pd.concat(lens, ignore_index=True) if lens else pd.DataFrame(columns=LENS_COLUMNS), adapter, cfg.words
    )
    df.insert(0, "task", answer[0]["task"] if answer else "")
    df.insert(0, "model", job.model)
    df.insert(0, "dataset", job.dataset)
    write_parquet(df, job.output.lens)


def query_positions(q: Question, layout, words: list[str]) -> dict[str, int]:
    """The position of each query word's last token in the sample: its first whole-word occurrence in
    the question text, placed by the whole prompt's character offsets (words not in the question are
    left out)."""
    out = {}
    for word in words:
        m = re.search(rf"\b{re.escape(word)}\b", q.question, flags=re.IGNORECASE)
        if m and (pos := layout.question_position(m.span())) is not None:
            out[word] = pos
    return out


ATTENTION_SKIP_COLUMNS = ["sample_id", "task", "reason"]


@dataclass(frozen=True)
class AttentionJob:
    """What Fig. 6's attention maps read (its plot-only options, e.g. `heads`, are the figure's)."""

    model: ModelLoad
    words: tuple[str, ...]
    layers: tuple[int, int]  # 1-indexed, inclusive
    n_samples: int
    backend: str

    @classmethod
    def of(cls, s, wc) -> "AttentionJob":
        o = s.figures["fig6_attention_maps"].options
        layers = tuple(o["layers"])
        return cls(s.models[wc.model].load, o["words"], layers, o["n_samples"], s.knockout.attention_backend)


def attention_task(adapter: Adapter, job: Job) -> None:
    """Attention probabilities from the query words to every video token, mean and max over heads,
    in each of the job's layers, clean and with cross-frame attention blocked in every layer, on the
    first `n_samples` correctly answered samples whose question holds a query word (the others are
    recorded in the job's `skipped` table with the reason)."""
    cfg = job.settings
    words, n_samples, dataset, model_name = list(cfg.words), cfg.n_samples, job.dataset, job.model
    layers = list(range(cfg.layers[0], cfg.layers[1] + 1))
    engine = KnockoutEngine(adapter, backend=cfg.backend)
    cross_frame = EXPERIMENTS["cross_frame"][0]
    every = list(range(adapter.n_layers))
    rows, skipped, drawn = [], [], 0
    for k, n, b, q, sample in _samples(adapter, job):
        if drawn == n_samples:
            break
        where = query_positions(q, sample.layout, words)
        if not where:
            reason = f"{model_name}: attention_maps: none of the query words {words} in its question"
            print(f"[attention] {b.sample_id}: {reason}; skipped", flush=True)
            skipped.append(dict(sample_id=b.sample_id, task=b.task, reason=reason))
            continue
        drawn += 1
        _, H, W = sample.layout.grid  # this sample's own grid
        video = torch.as_tensor(sample.layout.indices("video"))
        for condition, ko in (("baseline", None), ("no cross-frame", cross_frame)):
            probs = engine.attention_probs(sample, list(where.values()), [l - 1 for l in layers], ko, every)
            for l in layers:
                p = probs[l - 1][:, :, video]  # [heads, queries, n_video]
                for j, word in enumerate(where):
                    for stat, v in (("mean", p[:, j].mean(0)), ("max", p[:, j].max(0).values)):
                        for pos, a in enumerate(v.tolist()):
                            rows.append(
                                dict(
                                    dataset=dataset,
                                    task=b.task,
                                    model=model_name,
                                    sample_id=b.sample_id,
                                    word=word,
                                    condition=condition,
                                    layer=l,
                                    heads=stat,
                                    t=pos // (H * W),
                                    h=pos % (H * W) // W,
                                    w=pos % W,
                                    attention=a,
                                )
                            )
        print(
            f"[attention] {model_name} {b.task}: sample {drawn}/{n_samples} ({b.sample_id}, "
            f"{sample.layout.n_tokens} tokens)",
            flush=True,
        )
    print(f"[attention] {model_name}: {peak_memory(engine)}", flush=True)
    write_parquet(pd.DataFrame(rows), job.output.attention)
    write_parquet(pd.DataFrame(skipped, columns=ATTENTION_SKIP_COLUMNS), job.output.skipped)

"""Probing stage: answer probability by layer (Fig. 9), the logit lens on video tokens (Figs. 4, 5),
and attention maps from question words to the video (Fig. 6), from one clean forward per sample
(the cached video features, no vision rerun)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import torch

from vlmflow.io import write_parquet
from vlmflow.knockout.engine import KnockoutEngine
from vlmflow.knockout.spec import FAMILIES
from vlmflow.models.base import Adapter
from vlmflow.probes import first_subtoken, probe
from vlmflow.question import Question
from vlmflow.stages.features import cached_samples, select


def _samples(adapter, dataset, questions_path, features_path, baseline_path, sample_mode):
    base = select(pd.read_parquet(baseline_path), sample_mode)
    for k, (b, q, sample) in enumerate(cached_samples(adapter, dataset, questions_path, features_path, base)):
        yield k, len(base), b, q, sample


def probe_task(
    adapter: Adapter,
    *,
    dataset: str,
    model_name: str,
    questions_path: Path,
    features_path: Path,
    baseline_path: Path,
    sample_mode: str,
    final_norm: bool,
    projections: list[str],
    top_k: int,
    words: dict[str, list[str]],
    provenance: dict,
    answer_out: Path,
    lens_out: Path,
) -> None:
    """Per sample one clean pass, then (a) per layer the correct letter's and the other letters'
    probability, (b) per projection, layer and video position the lens's top-k tokens, each marked
    with the spatial or temporal keyword it is the first sub-token of (`words`, from config)."""
    engine = KnockoutEngine(adapter)
    _, H, W = adapter.grid
    answer, lens = [], []
    for k, n, b, q, sample in _samples(
        adapter, dataset, questions_path, features_path, baseline_path, sample_mode
    ):
        common = dict(dataset=dataset, task=b.task, model=model_name, sample_id=b.sample_id)
        rows, tops = probe(engine, sample, final_norm, projections, top_k)
        answer += [
            dict(common, **r, n_layers=adapter.n_layers, final_norm=final_norm, **provenance) for r in rows
        ]
        for projection, (ids, probs) in tops.items():  # [L+1, n_video, k]
            layer, pos, rank = torch.meshgrid(*(torch.arange(s) for s in ids.shape), indexing="ij")
            lens.append(
                pd.DataFrame(
                    dict(
                        sample_id=b.sample_id,
                        projection=projection,
                        final_norm=projection == "lm_head",
                        layer=layer.flatten().numpy().astype("int16"),
                        position=pos.flatten().numpy().astype("int32"),
                        rank=rank.flatten().numpy().astype("int8"),
                        token_id=ids.flatten().cpu().numpy().astype("int32"),
                        prob=probs.flatten().cpu().numpy().astype("float32"),
                    )
                )
            )
        if (k + 1) % 20 == 0 or k + 1 == n:
            print(f"[probes] {model_name} {b.task}: sample {k + 1}/{n}", flush=True)
    write_parquet(pd.DataFrame(answer), answer_out)
    df = (
        pd.concat(lens, ignore_index=True)
        if lens
        else pd.DataFrame(
            columns=["sample_id", "projection", "final_norm", "layer", "position", "rank", "token_id", "prob"]
        )
    )
    vocab = {i: adapter.token_text(i) for i in df.token_id.unique().tolist()}
    df["token"] = df.token_id.map(vocab)
    for kind in ("spatial", "temporal"):
        first = {}
        for word in words.get(kind, []):
            first.setdefault(first_subtoken(adapter.tokenizer, word), word)
        df[f"{kind}_word"] = df.token_id.map(first)
    df["t"], df["h"], df["w"] = df.position // (H * W), df.position % (H * W) // W, df.position % W
    df.insert(0, "task", answer[0]["task"] if answer else "")
    df.insert(0, "model", model_name)
    df.insert(0, "dataset", dataset)
    write_parquet(df, lens_out)


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


def attention_task(
    adapter: Adapter,
    *,
    dataset: str,
    model_name: str,
    questions_path: Path,
    features_path: Path,
    baseline_path: Path,
    words: list[str],
    layers: list[int],
    n_samples: int,
    backend: str,
    out: Path,
    skipped_out: Path,
) -> None:
    """Attention probabilities from the query words to every video token, mean and max over heads,
    in each of `layers` (1-indexed), clean and with cross-frame attention blocked in every layer, on
    the first `n_samples` correctly answered samples whose question holds a query word (the others
    are recorded in `skipped_out` with the reason)."""
    engine = KnockoutEngine(adapter, backend=backend)
    cross_frame = FAMILIES["cross_frame"][0]
    every = list(range(adapter.n_layers))
    _, H, W = adapter.grid
    rows, skipped, drawn = [], [], 0
    for k, n, b, q, sample in _samples(
        adapter, dataset, questions_path, features_path, baseline_path, "correct"
    ):
        if drawn == n_samples:
            break
        where = query_positions(q, sample.layout, words)
        if not where:
            reason = f"{model_name}: attention_maps: none of the query words {words} in its question"
            print(f"[attention] {b.sample_id}: {reason}; skipped", flush=True)
            skipped.append(dict(sample_id=b.sample_id, task=b.task, reason=reason))
            continue
        drawn += 1
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
        print(f"[attention] {model_name} {b.task}: sample {drawn}/{n_samples} ({b.sample_id})", flush=True)
    write_parquet(pd.DataFrame(rows), out)
    write_parquet(pd.DataFrame(skipped, columns=ATTENTION_SKIP_COLUMNS), skipped_out)

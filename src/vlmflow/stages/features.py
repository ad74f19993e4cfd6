"""Feature caching stage: video tokens once per sample, plus the baseline prediction of every sample."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import torch

from vlmflow.io import atomic_path, write_parquet
from vlmflow.jobs import Job
from vlmflow.models.base import Adapter, PreparedSample
from vlmflow.prompt import LETTERS, is_letter
from vlmflow.question import Question
from vlmflow.settings import ModelLoad
from vlmflow.stages.frames import load_frames


@dataclass
class Baseline:
    pred: int  # predicted token id
    text: str  # its decoded text
    p: float  # its probability
    p_gt: float  # probability of the correct letter
    correct: bool


def baseline(adapter: Adapter, sample: PreparedSample, question: Question) -> Baseline:
    """The unmodified model's answer: next-token argmax after the answer prompt, judged on its decoded
    text as the paper does."""
    probs = adapter.plain_forward(sample)
    pred = int(probs.argmax())
    text = adapter.token_text(pred)
    correct = is_letter(text, LETTERS[question.answer_index])
    return Baseline(pred, text, float(probs[pred]), float(probs[sample.gt_token]), correct)


BASELINE_COLUMNS = [
    *["dataset", "task", "model", "sample_id", "n_tokens", "gt", "pred_base", "pred_base_id"],
    *["p_base", "p_base_gt", "correct_base", "n_options"],
]


@dataclass(frozen=True)
class FeaturesJob:
    """What caching a task's video tokens and baseline reads: how the model is loaded, and the most
    tokens a sample may have (a longer one is skipped)."""

    model: ModelLoad
    max_tokens: int | None = None

    @classmethod
    def of(cls, s, wc) -> "FeaturesJob":
        return cls(s.models[wc.model].load, s.models[wc.model].max_tokens)


@torch.no_grad()
def cache_task(adapter: Adapter, job: Job) -> None:
    """Write video tokens {sample_id: [n_video, d]} (.pt; [n_video, k, d] for a family that feeds k
    features per token, Qwen3-VL's DeepStack), the baseline table and the samples this model cannot
    take (e.g. frames its processor refuses, a prompt longer than its context, or NaN/Inf in its
    answer's probabilities), with the reason. Each sample's tokens are spilled to disk as they come
    and held memory-mapped, so a task's features need not fit in memory at once."""
    dataset, model_name = job.dataset, job.model
    questions_path, frames_path = job.input.questions, job.input.frames
    features_out, baseline_out, skipped_out = job.output.features, job.output.baseline, job.output.skipped
    qs = pd.read_parquet(questions_path)
    frames = load_frames(frames_path, list(qs.sample_id))
    feats, rows, skipped = {}, [], []
    Path(features_out).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=Path(features_out).parent, prefix=".spill-") as spill:
        for k, (row, fr) in enumerate(zip(qs.itertuples(), frames)):
            q = Question.from_row(dataset, row)
            try:  # frames or a prompt the model cannot take, or NaN/Inf in its answer (NonFinite)
                video = adapter.video_features(adapter.pixel_values(fr))
                sample = adapter.prepare(q, video)
                too_long(sample.layout.n_tokens, job.settings.max_tokens)
                b = baseline(adapter, sample, q)
            except ValueError as err:
                print(f"[features] {model_name} {q.sample_id}: skipped: {err}", flush=True)
                skipped.append(dict(sample_id=q.sample_id, task=q.task, reason=f"{model_name}: {err}"))
                continue
            part = Path(spill) / f"{len(feats)}.pt"
            torch.save(video.cpu(), part)
            feats[q.sample_id] = torch.load(part, mmap=True)  # file-backed: the OS may page it out
            rows.append(
                dict(
                    dataset=dataset,
                    task=q.task,
                    model=model_name,
                    sample_id=q.sample_id,
                    n_tokens=sample.layout.n_tokens,
                    gt=LETTERS[q.answer_index],
                    pred_base=b.text,
                    pred_base_id=b.pred,
                    p_base=b.p,
                    p_base_gt=b.p_gt,
                    correct_base=b.correct,
                    n_options=len(q.candidates),
                )
            )
            if (k + 1) % 25 == 0:
                print(f"[features] {model_name} {q.task}: {k + 1}/{len(qs)}", flush=True)
        with atomic_path(features_out) as tmp:
            torch.save(feats, tmp)
    df = pd.DataFrame(rows, columns=None if rows else BASELINE_COLUMNS)  # empty: the columns kept
    write_parquet(df, baseline_out)
    write_parquet(pd.DataFrame(skipped, columns=["sample_id", "task", "reason"]), skipped_out)
    print(
        f"[features] {model_name} {dataset}/{job.task or qs.task.iloc[0]}: accuracy "
        f"{df.correct_base.mean():.3f} on {len(df)} samples, {len(skipped)} skipped",
        flush=True,
    )


def too_long(n_tokens: int, max_tokens: int | None) -> None:
    """Refuse a sample longer than the model's `max_tokens` (ValueError: the sample is skipped)."""
    if max_tokens is not None and n_tokens > max_tokens:
        raise ValueError(
            f"{n_tokens} tokens, more than the model's max_tokens {max_tokens}; raise max_tokens if "
            "the job's memory allows, or sample fewer frames"
        )


SAMPLE_MODES = ("correct", "wrong", "all")


def select(baseline: pd.DataFrame, mode: str) -> pd.DataFrame:
    """The samples a stage analyses: those the unmodified model answers correctly (the paper's
    default), wrongly, or all."""
    if mode not in SAMPLE_MODES:
        raise ValueError(f"sample_mode must be one of {SAMPLE_MODES}, got {mode!r}")
    if mode == "all":
        return baseline
    return baseline[baseline.correct_base == (mode == "correct")]


def cached_samples(adapter: Adapter, job: Job, baseline: pd.DataFrame):
    """(baseline row, Question, PreparedSample) of every sample of `baseline`, from the job's cached
    video tokens (no vision rerun); the layout knows the option the baseline chose (`predicted_option`)."""
    qs = pd.read_parquet(job.input.questions).set_index("sample_id", drop=False)
    feats = torch.load(job.input.features, mmap=True)  # read per sample, not all at once
    for b in baseline.itertuples():
        q = Question.from_row(job.dataset, qs.loc[b.sample_id])
        sample = adapter.prepare(q, feats[b.sample_id].to(adapter.device))
        if b.pred_base_id in sample.option_tokens:
            chosen = sample.option_tokens.index(b.pred_base_id)
            sample.layout = replace(sample.layout, predicted_option=chosen)
        yield b, q, sample

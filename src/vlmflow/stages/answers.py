"""Answers stage (the paper's Table 2): every sample's answer before and after cross-frame attention
is blocked in the first half of the layers, as multiple choice (the letter after "Best option:(")
and, where the dataset has answer prompts, open-ended (greedy words after the task's answer prompt).
The open-ended baseline is also the open-ended accuracy table."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from vlmflow.io import write_parquet
from vlmflow.jobs import Job, naming
from vlmflow.knockout.engine import KnockoutEngine, canary
from vlmflow.knockout.spec import EXPERIMENTS, Condition, explicit_window
from vlmflow.models.base import Adapter
from vlmflow.models.loading import model_provenance
from vlmflow.open_ended import exact_match, open_answer
from vlmflow.prompt import is_letter
from vlmflow.provenance import Stamp, sample_provenance
from vlmflow.settings import ModelLoad
from vlmflow.stages.features import cached_samples, select

CROSS_FRAME = EXPERIMENTS["cross_frame"][0]


def first_half(n_layers: int) -> tuple[int, ...]:
    """Layers 0..L/2-1, the paper's "first half of the layers"."""
    return tuple(range(n_layers // 2))


@dataclass(frozen=True)
class AnswersJob:
    """What Table 2's answers of a task read: the dataset's answer prompts and answer length."""

    model: ModelLoad
    answer_prompt: str | None  # the task's open-ended answer prompt (None: multiple choice only)
    max_new_tokens: int
    stamp: Stamp

    @classmethod
    def of(cls, s, wc) -> "AnswersJob":
        d = s.datasets[wc.dataset]
        prompt = d.answer_prompts.get(wc.task)
        return cls(s.models[wc.model].load, prompt, d.max_new_tokens, Stamp.of(s, wc.dataset))


def answer_task(adapter: Adapter, job: Job) -> None:
    """One row per sample of the task (all samples, as the paper's accuracy): multiple-choice letter
    and, with answer prompts, generated answer, clean and with early cross-frame attention blocked."""
    cfg = job.settings
    answer_prompts = {} if cfg.answer_prompt is None else {job.task: cfg.answer_prompt}
    max_new_tokens = cfg.max_new_tokens
    provenance = model_provenance(adapter, cfg.model.path, cfg.stamp)
    engine = KnockoutEngine(adapter, backend=cfg.stamp.attention_backend)
    layers = first_half(adapter.n_layers)
    cond = Condition(CROSS_FRAME, explicit_window(list(layers), adapter.n_layers))
    stop = adapter.stop_tokens
    base = select(pd.read_parquet(job.input.baseline), "all")
    rows = []
    for k, (b, q, sample) in enumerate(cached_samples(adapter, job, base)):
        with naming(job, b.task, b.sample_id):
            if k == 0:
                canary(engine, sample)
            pred_after = adapter.token_text(int(engine.run(sample, [cond])[0].argmax()))
            row = dict(
                dataset=job.dataset,
                task=b.task,
                model=job.model,
                sample_id=b.sample_id,
                question=q.question,
                blocked_layers=f"{layers[0] + 1}-{layers[-1] + 1}",
                gt=b.gt,
                pred_before=b.pred_base,
                pred_after=pred_after,
                correct_before=bool(b.correct_base),
                correct_after=is_letter(pred_after, b.gt),
            )
            if q.task in answer_prompts:
                oa = open_answer(q, answer_prompts)
                open_sample = adapter.prepare(q, sample.video_tokens, oa)
                before = engine.generate(open_sample, max_new_tokens, stop)
                after = engine.generate(open_sample, max_new_tokens, stop, CROSS_FRAME, layers)
                for when, ids in (("before", before), ("after", after)):
                    text = adapter.tokenizer.decode(ids, skip_special_tokens=True).strip()
                    row[f"answer_{when}"] = text
                    row[f"first_token_{when}"] = bool(ids) and ids[0] == open_sample.gt_token
                    row[f"exact_{when}"] = exact_match(text, oa.reference)
                row.update(answer_prompt=oa.prompt, reference=oa.reference)
            rows.append({**row, **sample_provenance(provenance, sample.layout)})
            print(f"[answers] {job.model} {b.task}: sample {k + 1}/{len(base)}", flush=True)
    write_parquet(pd.DataFrame(rows), job.output.table)

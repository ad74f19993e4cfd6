"""Open-ended flow stage (the paper's appendix figure on VCGBench): per sample of a task, the greedy
answer, its anchor words, and the `open_ended_flow` knockouts swept over the layers at each anchor
(`vlmflow.open_ended_flow`); rows of the anchors' probabilities, and one row per sample saying what
was generated and why a sample or an anchor was left out."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd
import torch

from vlmflow.io import write_parquet
from vlmflow.jobs import Job, naming, peak_memory
from vlmflow.knockout.engine import KnockoutEngine, canary
from vlmflow.knockout.spec import Experiment, head_label
from vlmflow.models.base import Adapter
from vlmflow.models.loading import model_provenance, system_prompt
from vlmflow.open_ended import OpenAnswer
from vlmflow.open_ended_flow import find_anchors, token_spans, with_answer
from vlmflow.provenance import Stamp, sample_provenance
from vlmflow.question import Question
from vlmflow.settings import ModelLoad, OpenEndedFlow
from vlmflow.stages.features import too_long
from vlmflow.stages.frames import load_frames
from vlmflow.stages.knockout import Sweep, experiment_conditions
from vlmflow.tagging import make_tagger

EXPERIMENT = "open_ended_flow"


@dataclass(frozen=True)
class OpenFlowJob:
    """What one task's open-ended flow reads: the model, the experiment and its sweep, the prompt
    (system prompt, the label before the question, the task's pre-fill), the answer length, the
    tagger and anchor settings."""

    model: ModelLoad
    experiment: Experiment
    sweep: Sweep
    system_prompt: str | None  # None: the model's own
    question_label: str
    answer_prompt: str  # "" = no pre-fill (VCGBench)
    max_new_tokens: int
    flow: OpenEndedFlow
    batch_size: int
    max_tokens: int | None
    stamp: Stamp

    @classmethod
    def of(cls, s, wc) -> "OpenFlowJob":
        d = s.datasets[wc.dataset]
        return cls(
            s.models[wc.model].load,
            s.experiments[EXPERIMENT],
            Sweep.parse(wc.sweep, "all"),  # every sample: the flow selects by its anchors, not its answer
            d.system_prompt,
            d.question_label,
            d.answer_prompts.get(wc.task, ""),
            d.max_new_tokens,
            d.open_ended_flow,
            s.knockout.batch_size,
            s.models[wc.model].max_tokens,
            Stamp.of(s, wc.dataset),
        )


RESPONSE_COLUMNS = ["dataset", "task", "model", "sample_id", "response", "n_response_tokens"]
RESPONSE_COLUMNS += ["anchors", "kept_anchors", "reason"]
ROW_COLUMNS = ["dataset", "task", "model", "sample_id", "experiment", "anchor", "anchor_word"]
ROW_COLUMNS += ["anchor_token", "anchor_position", "n_tokens", "block", "heads", "window", "window_style"]
ROW_COLUMNS += ["layer", "p_base", "p_new", "rel_change", "pred_new"]


@torch.no_grad()
def run_flow(adapter: Adapter, job: Job) -> None:
    """The flow on every sample of the task: `job.output.table` (one row per anchor x block x
    window) and `job.output.responses` (one row per sample: the answer, its anchors, and the reason a
    sample or an anchor was left out)."""
    cfg, flow = job.settings, job.settings.flow
    tagger = make_tagger(flow.tagger, flow.spacy_model, flow.lexicon)
    conditions = experiment_conditions(adapter, cfg.experiment, cfg.sweep, job.model)
    engine = KnockoutEngine(adapter, backend=cfg.stamp.attention_backend, batch_size=cfg.batch_size)
    provenance = model_provenance(adapter, cfg.model.path, cfg.stamp)
    system = None if cfg.system_prompt is None else system_prompt(cfg.system_prompt)
    qs = pd.read_parquet(job.input.questions)
    frames = load_frames(job.input.frames, list(qs.sample_id))
    rows, answers, checked = [], [], False
    for k, (row, fr) in enumerate(zip(qs.itertuples(), frames)):
        q = Question.from_row(job.dataset, row)
        names = dict(dataset=job.dataset, task=q.task, model=job.model, sample_id=q.sample_id)
        answer_prompt = OpenAnswer(cfg.answer_prompt, q.answer, system, cfg.question_label)
        with naming(job, q.task, q.sample_id):
            try:
                sample = adapter.prepare(q, adapter.video_features(adapter.pixel_values(fr)), answer_prompt)
                too_long(sample.layout.n_tokens + cfg.max_new_tokens, cfg.max_tokens)
            except ValueError as err:
                found, answer = [], _answer(reason=f"prompt: {err}")
            else:
                if not checked:  # the canary runs on the first sample the model takes
                    canary(engine, sample)
                    checked = True
                found, answer = _sample_rows(
                    adapter, engine, tagger, flow, sample, cfg.max_new_tokens, conditions
                )
        prov = sample_provenance(provenance, sample.layout) if found else provenance
        rows += [{**names, "experiment": EXPERIMENT, **r, **prov} for r in found]
        answers.append({**names, **answer})
        kept = f"anchors {answer['kept_anchors']}" + (f"; {answer['reason']}" if answer["reason"] else "")
        n = f" ({found[0]['n_tokens'] - found[0]['anchor_position']} tokens)" if found else ""
        print(f"[open_ended_flow] {job.model} {q.task}: sample {k + 1}/{len(qs)}{n}: {kept}", flush=True)
    print(f"[open_ended_flow] {job.model}: {peak_memory(engine)}", flush=True)
    for s in pd.read_parquet(job.input.skipped).itertuples():  # left out at frame extraction
        names = dict(dataset=job.dataset, task=s.task, model=job.model, sample_id=s.sample_id)
        answers.append({**names, **_answer(reason=f"frames: {s.reason}")})
    cols = None if rows else [*ROW_COLUMNS, *provenance]
    write_parquet(pd.DataFrame(rows, columns=cols), job.output.table)
    write_parquet(pd.DataFrame(answers, columns=RESPONSE_COLUMNS), job.output.responses)


def _answer(response: str = "", n_tokens: int = 0, anchors=(), kept=(), reason: str = "") -> dict:
    """A sample's responses-table entry (less its names)."""
    words = json.dumps([a.word for a in anchors])
    return dict(
        response=response,
        n_response_tokens=n_tokens,
        anchors=words,
        kept_anchors=json.dumps(list(kept)),
        reason=reason,
    )


def _sample_rows(adapter, engine, tagger, flow, sample, max_new_tokens: int, conditions):
    """One prepared sample's rows (its answer, anchors and knockouts) and its responses-table entry."""
    ids = engine.generate(sample, max_new_tokens, adapter.stop_tokens)
    text, spans = token_spans(adapter.tokenizer, ids)
    anchors = find_anchors(text, spans, ids, tagger(text), set(flow.anchor_pos))
    if len(anchors) < flow.n_anchors:
        pos = "/".join(flow.anchor_pos)
        why = f"{len(anchors)} anchor words ({pos}) in the answer, fewer than {flow.n_anchors}"
        return [], _answer(text, len(ids), anchors, reason=why)
    rows, kept, lost = [], [], []
    for a in anchors[: flow.n_anchors]:
        ext = with_answer(adapter, sample, ids[: a.token], flow.open_tokens, a.token_id)
        clean = engine.clean(ext)
        pred = int(clean.probs.argmax())
        if pred != a.token_id:  # the paper keeps an anchor only where greedy decoding gives it again
            lost.append(f"anchor {a.n} ({a.word!r}): the next token is {adapter.token_text(pred)!r}")
            continue
        kept.append(a.n)
        probs = engine.run(ext, conditions, clean)
        p_base = float(clean.probs[a.token_id])
        for c, p in zip(conditions, probs):
            p_new = float(p[a.token_id])
            rows.append(
                dict(
                    anchor=a.n,
                    anchor_word=a.word,
                    anchor_token=adapter.token_text(a.token_id),
                    anchor_position=a.token,
                    n_tokens=ext.layout.n_tokens,
                    block=c.knockout.name,
                    heads=head_label(c.knockout.heads),
                    window=c.window.size,
                    window_style=c.window.style,
                    layer=c.window.centre + 1,
                    p_base=p_base,
                    p_new=p_new,
                    rel_change=(p_new - p_base) / p_base * 100,
                    pred_new=adapter.token_text(int(p.argmax())),
                )
            )
    return rows, _answer(text, len(ids), anchors, kept, "; ".join(lost))

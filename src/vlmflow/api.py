"""The Python surface for one video: load a model, ask it one question about one clip, and run a
knockout experiment's sweep, the probes or a pathway on it, each as a pandas DataFrame with the
workflow's columns; the workflow's stages run the same functions on every sample of a task.

    import vlmflow as vf

    model = vf.load_model("llava_video", "models/toy-video", system_prompt="toy")
    clip = vf.clip(model, "clip.mp4", "How many times does the yellow square flash?", ["one", "two"], 1)
    curves = vf.sweep(model, clip, "cross_frame")       # one row per block x window centre
    vf.plot_curves(curves, "cross_frame.png")
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch

from vlmflow.knockout.engine import KnockoutEngine, canary
from vlmflow.knockout.pathways import Pathway, pathway_from_config
from vlmflow.knockout.spec import Experiment
from vlmflow.models.base import Adapter, PreparedSample
from vlmflow.models.loading import load_from_config, model_provenance
from vlmflow.prompt import LETTERS
from vlmflow.provenance import Stamp
from vlmflow.question import Question
from vlmflow.settings import model_settings

__all__ = ["Clip", "clip", "load_model", "pathway", "plot_curves", "probe", "sweep"]


def load_model(family: str, path: str, **settings) -> Adapter:
    """A VideoLLM from a hub id or a local directory, as the workflow loads it.

    Args:
        family: the model family, "llava_video", "internvl" or "videollama3".
        path: a local checkpoint directory, or a hub id (read from the Hugging Face cache offline).
        settings: any setting of a model entry of the config (dtype, device, system_prompt,
            pooling_shape, device_map, the family's own, e.g. VideoLLaMA3's vision_attention).
    Returns:
        The family's adapter: the model, its tokenizer and processor, behind the adapter contract.
    """
    m = model_settings(Path(path).name or path, dict(family=family, path=str(path), window=1, **settings))
    return load_from_config(m.load, m.name)


@dataclass
class Clip:
    """One question about one video, prepared for a model: the question, the sampled frames, the
    model's inputs (video tokens in the prompt) and its unmodified answer."""

    question: Question
    frames: np.ndarray  # [T, H, W, 3] uint8
    sample: PreparedSample
    pred: int  # the token the unmodified model predicts
    p_pred: float  # its probability
    p_gt: float  # the probability of the correct letter

    @property
    def answer(self) -> str:
        return LETTERS[self.question.answer_index]


def clip(
    model: Adapter,
    video,
    question: str,
    options: list[str],
    answer: int | str,
    *,
    sampling: str = "segments",
    bounds: tuple[float, float] | None = None,
    repeats: bool = False,
) -> Clip:
    """One multiple-choice question about a video, with the workflow's frame rule and prompt.

    Args:
        model: a loaded model (`load_model`).
        video: a video file, or its frames already sampled ([T, H, W, 3] uint8, T = the model's).
        question: the question text; options: the option texts in display order.
        answer: the index of the correct option, or its text.
        sampling: the frame rule ("segments": the paper's; "linspace", "fps1": VideoLLaMA3's; "hf_uniform",
            "hf_centered", "fps2": transformers' video processors', fps2 Qwen3-VL's at most the
            model's frames; see vlmflow.data.frames).
        bounds: the clip's [start, end] in seconds (None: the whole video).
        repeats: use a clip with fewer frames than the model takes, its frames repeated (else an
            error, as the workflow skips such a clip unless `short_clips: repeat`).
    Returns:
        The `Clip`: its frames, the model's inputs and its unmodified answer.
    """
    from vlmflow.data.frames import read_frames

    index = options.index(answer) if isinstance(answer, str) else int(answer)
    T = model.n_frames
    times = None
    if isinstance(video, (str, Path)):
        frames, times = read_frames(video, T, bounds, with_times=True, sampling=sampling, repeats=repeats)
        name = Path(video).stem
    else:
        frames, name = np.asarray(video), "frames"
    params = {"frame_size": [int(frames.shape[1]), int(frames.shape[2])]}
    if times is not None:
        params.update(
            frame_times=[float(t) for t in times], frame_times_numpy=isinstance(times[0], np.floating)
        )
    path = "" if times is None else str(video)
    q = Question("clip", "clip", name, question, list(options), index, path, bounds, params)
    with torch.no_grad():
        sample = model.prepare(q, model.video_features(model.pixel_values(frames)))
        probs = model.plain_forward(sample)
    pred = int(probs.argmax())
    return Clip(q, frames, sample, pred, float(probs[pred]), float(probs[sample.gt_token]))


def _baseline(model: Adapter, c: Clip):
    from vlmflow.prompt import is_letter

    text = model.token_text(c.pred)
    return SimpleNamespace(
        task=c.question.task,
        sample_id=c.question.sample_id,
        p_base=c.p_pred,
        p_base_gt=c.p_gt,
        pred_base=text,
        pred_base_id=c.pred,
        gt=c.answer,
        correct_base=is_letter(text, c.answer),
    )


def _experiment(experiment) -> Experiment:
    from vlmflow.knockout.spec import PAPER_EXPERIMENTS

    if isinstance(experiment, Experiment):
        return experiment
    if isinstance(experiment, str):
        if experiment not in PAPER_EXPERIMENTS:
            raise ValueError(f"unknown experiment {experiment!r}; the paper's: {sorted(PAPER_EXPERIMENTS)}")
        return PAPER_EXPERIMENTS[experiment]
    return Experiment.from_dict(
        experiment.get("name", "mine"), {k: v for k, v in experiment.items() if k != "name"}
    )


def _names(model: Adapter, c: Clip, **extra) -> dict:
    return dict(
        dataset="clip",
        task=c.question.task,
        model=getattr(model, "model_id", ""),
        sample_id=c.question.sample_id,
        **extra,
    )


def _provenance(model: Adapter, backend: str, sampling: str = "segments") -> dict:
    return model_provenance(
        model, getattr(model, "model_id", ""), Stamp(backend, "fast", model.n_frames, sampling, 0)
    )


def sweep(
    model: Adapter,
    c: Clip,
    experiment,
    window: int | None = None,
    style: str = "center",
    random_control: bool = True,
    backend: str = "sdpa",
) -> pd.DataFrame:
    """A knockout experiment swept over the model's layers on one clip.

    Args:
        model, c: the model and the clip (`clip`).
        experiment: the name of one of the paper's experiments ("cross_frame", "vql_to_ql",
            "question_and_options_to_last", "vq_to_true_opt"), an `Experiment`, or one as the config
            writes it: {"name": ..., "blocks": [{"name": ..., "edges": [[source, target]]}], ...}.
        window: layers per window (default: the experiment's, else about a third of the depth, at
            most the paper's 9); style: "center", "inverse", "top_down" or "bottom_up".
        random_control: also run each block's matched random-edge control.
        backend: the attention backend ("sdpa", "eager", "flex").
    Returns:
        One row per block (and control) x window centre, with the results contract's columns
        (README, "Results contract"): p_base, p_new, rel_change (%), pred_new, correct_new, ...
    """
    from vlmflow.stages.knockout import Sweep, experiment_conditions, knockout_rows

    e = _experiment(experiment)
    window = window or e.window or min(9, max(1, round(model.n_layers / 3)))
    conditions = experiment_conditions(model, e, Sweep(e.window_style or style, window, "all"), "model")
    engine = KnockoutEngine(model, backend=backend)
    canary(engine, c.sample)
    clean = engine.clean(c.sample)
    probs = engine.run(c.sample, conditions, clean)
    control = f"0/{c.question.sample_id}" if random_control else None
    rows = knockout_rows(engine, c.sample, _baseline(model, c), conditions, probs, control, clean)
    names, provenance = _names(model, c, experiment=e.name), _provenance(model, backend)
    return pd.DataFrame([{**names, **r, **provenance} for r in rows])


def probe(
    model: Adapter,
    c: Clip,
    final_norm: bool = True,
    projections: tuple[str, ...] = ("embedding", "lm_head"),
    top_k: int = 3,
    words: dict | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The probes of the clean forward on one clip (Figs. 4, 5, 9).

    Args:
        final_norm: apply the final norm to layers 0..L-1 before the answer probability's lm_head.
        projections: the logit lens's, "embedding" (the paper's) and/or "lm_head".
        top_k: lens tokens kept per layer and video position.
        words: the lens keywords, {"spatial": [...], "temporal": [...]}.
    Returns:
        (answer probability: one row per layer 0..L with p_true, p_false; logit lens: one row per
        projection, layer, video position and rank, with its token and keyword, cell t, h, w).
    """
    from vlmflow.probes import probe
    from vlmflow.stages.probes import label_lens, lens_frame

    engine = KnockoutEngine(model)
    rows, tops = probe(engine, c.sample, final_norm, list(projections), top_k)
    names = _names(model, c)
    answer = pd.DataFrame([dict(names, **r, n_layers=model.n_layers, final_norm=final_norm) for r in rows])
    lens = label_lens(lens_frame(c.question.sample_id, tops, c.sample.layout.grid), model, words or {})
    return answer, lens


def pathway(model: Adapter, c: Clip, spec, seeds: tuple[int, ...] = (0,)) -> pd.DataFrame:
    """One clip answered with the full model, with only the effective pathways of `spec` (a preset
    name, e.g. "toy", or {name, n_layers, cross_frame: [a, b], video_question: [a, b],
    question_last: [a, b]}), and with as many edges blocked at random per layer (one row per seed).

    Returns:
        One row per setting (full, pathway, random) with the answer, whether it is correct and the
        attention edges kept.
    """
    from vlmflow.stages.pathways import pathway_rows

    p = spec if isinstance(spec, Pathway) else pathway_from_config(spec, model.n_layers)
    engine = KnockoutEngine(model)
    names = dict(_names(model, c), **_provenance(model, "sdpa"))
    return pd.DataFrame(
        pathway_rows(engine, c.sample, _baseline(model, c), {p.name: p}, list(seeds), 0, names)
    )


def plot_curves(rows: pd.DataFrame, path, title: str = "") -> pd.DataFrame:
    """Draw `sweep` rows as the workflow's figures do (PNG and PDF beside `path`, and the CSV of the
    plotted numbers): one panel per task, one curve per block with its 95 % band, the random-edge
    controls dashed; a head-group experiment as a layer x head map. Returns the plotted table."""
    from vlmflow.plots import experiment_curves, head_map

    tasks = list(dict.fromkeys(rows.task))
    grouped = rows.heads.ne("all heads").any() if "heads" in rows else False
    draw = head_map if grouped else experiment_curves
    return draw(rows, Path(path).with_suffix(""), tasks, {}, title or str(rows.experiment.iloc[0]))

"""Seeded training of the embedded toy VideoLLMs (see README, "The embedded toy models").

Stage "image": a fresh toy learns static questions (colour, position) on still clips, as an
ImageLLM learns single images. Stage "video": initialised from the image model, it is fine-tuned on
the five temporal tasks (plus the static ones), as LLaVA-NeXT-Video-FT is from LLaVA-NeXT.

Recipe (models/README.md): AdamW, lr warm-up then cosine, letters randomised from step 0; a share
of the questions asked open-ended (no options, the task's answer prompt, the answer in words and
the end of sequence); and three training-only objectives whose heads are not saved:
- a pointer head scoring each option's last token against the correct option (weight 1, fading to
  0 between 50 % and 60 % of a segment); it makes the option tokens gather the video evidence;
- (video stage) a frame-difference head on the video tokens after layer 3, regressing how each
  cell changed since the previous frame; with frame-shared positions this makes video tokens read
  earlier frames;
- (last video segment) a lens objective: the video tokens' state after layer 4, read through the
  input embedding matrix (the paper's logit lens), should name the clip's answer words.

    python -m vlmflow.stages.toy_training --stage image --out results/toy-image --steps 400
    python -m vlmflow.stages.toy_training --stage video --init results/toy-image --out results/toy-video \
        --steps 1000

The whole chain that produced the committed checkpoints is `config.yaml: toy_training.recipe`,
run by `snakemake train_toy_models` (see models/README.md).
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vlmflow.data import synthetic
from vlmflow.jobs import Job
from vlmflow.models import toy
from vlmflow.models.base import Adapter
from vlmflow.open_ended import open_answer
from vlmflow.question import Question
from vlmflow.settings import FrozenMap

STAGE_TASKS = {
    "image": {t: 1.0 for t in synthetic.STATIC_TASKS},
    "video": {**{t: 1.0 for t in synthetic.TASKS}, **{t: 0.5 for t in synthetic.STATIC_TASKS}},
}
FRAME_DIFF_LAYER = 3  # the frame-difference head reads the output of this decoder layer
LENS_STATE = 4  # the lens objective reads state 4 (the output of the 4th decoder layer)


class Batcher:
    """Procedurally generated batches: frames, token ids, targets. A question is asked open-ended
    (no options, the task's answer prompt, answer in words + end of sequence) with probability
    `open_ended`, else as multiple choice (one letter)."""

    def __init__(
        self,
        adapter: Adapter,
        tasks: dict[str, float],
        seed: int,
        open_ended: float = 0.0,
        answer_prompts: dict[str, str] | None = None,
        lens_words: list[str] = (),
    ):
        self.adapter = adapter
        self.names = list(tasks)
        w = np.array(list(tasks.values()))
        self.p = w / w.sum()
        self.rng = np.random.default_rng(seed)
        self.open_ended, self.answer_prompts = open_ended, answer_prompts or {}
        if open_ended and not set(self.names) <= set(self.answer_prompts):
            missing = sorted(set(self.names) - set(self.answer_prompts))
            raise ValueError(f"open-ended training needs an answer prompt for every task; missing {missing}")
        self.lens_ids = {w: adapter.answer_tokens(w)[0] for w in lens_words}
        proc = adapter.image_processor
        self.mean = torch.tensor(proc.image_mean).view(1, 1, 3, 1, 1)
        self.std = torch.tensor(proc.image_std).view(1, 1, 3, 1, 1)

    def questions(self, n: int, task: str | None = None) -> list[Question]:
        tasks = [task] * n if task else self.rng.choice(self.names, size=n, p=self.p)
        return [synthetic.sample_question(t, self.rng) for t in tasks]

    def batch(self, qs: list[Question], open_ended: bool | None = None) -> dict:
        """`open_ended` True/False asks every question that way; None draws per question."""
        frames = np.stack(
            [synthetic.render(q, synthetic.sampled_indices(q)) for q in qs]
        )  # [B, T, S, S, 3] uint8
        x = torch.from_numpy(frames).float().div(255).permute(0, 1, 4, 2, 3)  # [B, T, 3, S, S]
        pixels = (x - self.mean) / self.std  # what the CLIP processor does at native size
        T, H, W = self.adapter.grid
        cells = x.reshape(len(qs), T, 3, H, x.shape[3] // H, W, x.shape[4] // W).mean((4, 6))  # [B,T,3,H,W]
        diff = (cells[:, 1:] - cells[:, :-1]).permute(0, 1, 3, 4, 2).reshape(len(qs), -1, 3)  # [B,(T-1)HW,3]
        if open_ended is None:
            flags = self.rng.random(len(qs)) < self.open_ended
        else:
            flags = np.full(len(qs), open_ended)
        ids, layouts, answers = [], [], []
        eos = self.adapter.tokenizer.eos_token_id
        for q, is_open in zip(qs, flags):
            if is_open:
                oa = open_answer(q, self.answer_prompts)
                i, lay, reference = self.adapter.encode(q, oa)  # the reference's ids after the prompt
                answers.append(reference + [eos])
            else:
                i, lay, letters = self.adapter.encode(q)
                answers.append([letters[lay.true_option]])
            ids.append(i)
            layouts.append(lay)
        return dict(
            pixels=pixels,
            frame_diff=diff * 4,
            ids=ids,
            layouts=layouts,
            answers=answers,  # token ids to predict from the last prompt position on
            choice=torch.tensor([-1 if o else lay.true_option for o, lay in zip(flags, layouts)]),
            lens=[[self.lens_ids[w] for w in q.answer.split() if w in self.lens_ids] for q in qs],
        )


class ToyTrainer:
    def __init__(self, adapter: Adapter, device: str):
        self.a = adapter
        self.device = device
        h = adapter.decoder().text_model.config.hidden_size
        self.pointer = torch.nn.Linear(h, 1).to(device)
        self.diff_head = torch.nn.Linear(h, 3).to(device)

    def params(self):
        return [*self.a.model.parameters(), *self.pointer.parameters(), *self.diff_head.parameters()]

    def forward(self, b: dict) -> dict:
        """Teacher-forced forward -> answer logits [n_targets, V] and targets [n_targets], the sample of
        each target, pointer logits [n_mc, K] of the multiple-choice samples, frame-difference
        predictions [B, (T-1)HW, 3] and the lens logits of the video tokens [B, n_video, V] (None when
        no question of the batch has lens targets)."""
        a, dev = self.a, self.device
        video = a.video_features(b["pixels"].to(dev))  # [B, n_video, d]
        parts = a.decoder()
        rows, pos = [], []
        for i, (ids, lay, ans) in enumerate(zip(b["ids"], b["layouts"], b["answers"])):
            forced = parts.embed_tokens(torch.tensor(ans[:-1], dtype=torch.long, device=dev))  # [k-1, d]
            rows.append(torch.cat([a.embed(ids, lay, video[i]), forced]))
            p = a.position_ids(lay)
            pos.append(torch.cat([p, p[-1] + 1 + torch.arange(len(ans) - 1)]))
        n = max(len(r) for r in rows)
        pad = parts.embed_tokens(torch.tensor(a.tokenizer.pad_token_id, device=dev))
        # right padding: with causal attention the real tokens never see the pads
        E = torch.stack([torch.cat([r, pad.expand(n - len(r), -1)]) for r in rows])  # [B, n, d]
        P = torch.stack([torch.cat([p, p[-1] + 1 + torch.arange(n - len(p))]) for p in pos]).to(dev)
        out = parts.text_model(inputs_embeds=E, position_ids=P, output_hidden_states=True)
        final = out.last_hidden_state  # [B, n, d] (after the final norm)
        who = [i for i, ans in enumerate(b["answers"]) for _ in ans]
        at = [lay.last + j for lay, ans in zip(b["layouts"], b["answers"]) for j in range(len(ans))]
        logits = parts.lm_head(final[who, at])  # [n_targets, V]
        targets = torch.tensor([t for ans in b["answers"] for t in ans], device=dev)
        mc = [i for i, c in enumerate(b["choice"].tolist()) if c >= 0]
        ptr = None
        if mc:
            opt_end = torch.tensor([[o[1] - 1 for o in b["layouts"][i].options] for i in mc], device=dev)
            ptr = self.pointer(final[torch.tensor(mc, device=dev)[:, None], opt_end]).squeeze(-1)  # [n_mc, K]
        v0, v1 = b["layouts"][0].video_range
        hw = a.grid[1] * a.grid[2]
        mid = out.hidden_states[FRAME_DIFF_LAYER + 1][:, v0 + hw : v1]  # video tokens of frames 1..T-1
        lens = None
        if any(b["lens"]):
            lens = out.hidden_states[LENS_STATE][:, v0:v1] @ parts.embed_tokens.weight.T  # [B, n_video, V]
        return dict(
            logits=logits,
            targets=targets,
            who=torch.tensor(who),
            pointer=ptr,
            mc=mc,
            frame_diff=self.diff_head(mid),
            lens=lens,
        )

    @torch.no_grad()
    def accuracy(self, batcher: Batcher, tasks: list[str], n: int, seed: int) -> list[dict]:
        """Held-out accuracy on freshly drawn questions (own seed) per task: multiple choice (the
        letter), and when the batcher has answer prompts, open-ended exact match and first token
        (teacher-forced argmax at every answer position = what greedy decoding generates)."""
        self.a.model.eval()
        rng_state, batcher.rng = batcher.rng, np.random.default_rng(seed)
        rows = []
        for t in tasks:
            qs = batcher.questions(n, t)
            out = self.forward(batcher.batch(qs, open_ended=False))
            row = dict(task=t, accuracy=(out["logits"].argmax(-1) == out["targets"]).float().mean().item())
            if t in batcher.answer_prompts:
                out = self.forward(batcher.batch(qs, open_ended=True))
                hit = (out["logits"].argmax(-1) == out["targets"]).cpu()
                first = torch.ones_like(hit)
                first[1:] = out["who"][1:] != out["who"][:-1]
                exact = torch.zeros(n).scatter_reduce_(0, out["who"], hit.float(), "amin", include_self=False)
                row.update(open_exact=exact.mean().item(), open_first_token=hit[first].float().mean().item())
            rows.append(row)
        batcher.rng = rng_state
        self.a.model.train()
        return rows


def lr_at(step: int, steps: int, lr: float, warmup: int) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    frac = (step - warmup) / max(1, steps - warmup)
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))


def pointer_weight(step: int, steps: int) -> float:
    f = step / steps
    return 1.0 if f < 0.5 else max(0.0, 1 - (f - 0.5) / 0.1)


@dataclass(frozen=True)
class Segment:
    """One training segment of the recipe (`config.yaml: toy_training.recipe`); `stop_after` ends it
    early, keeping the schedule of `steps`; `task_weights` overrides the stage's sampling weight of
    some tasks; `open_ended` is the share of questions asked open-ended; `lens_weight` weighs the lens
    objective (video tokens at state LENS_STATE read through the input embeddings as their clip's
    answer words)."""

    steps: int
    seed: int
    lr: float = 1e-3
    batch_size: int = 32
    warmup: int = 100
    eval_every: int = 200
    positions: str = "frame_shared"
    frame_diff_weight: float = 1.0
    stop_after: int | None = None
    task_weights: Mapping[str, float] | None = None
    open_ended: float = 0.0
    lens_weight: float = 0.0


@dataclass(frozen=True)
class Words:
    """The benchmark's words a toy learns besides its questions: the open-ended answer prompts (task
    -> prompt) and the lens objective's keywords."""

    answer_prompts: Mapping[str, str] = field(default_factory=dict)
    lens_words: tuple[str, ...] = ()


def train(
    stage: str, seg: Segment, out: Path, init: Path | None = None, device: str = "cpu", words: Words = Words()
) -> None:
    """One training segment of `stage` (image | video), from `init` (None: a fresh toy), into `out`."""
    steps, seed, lr, warmup, stop_after = seg.steps, seg.seed, seg.lr, seg.warmup, seg.stop_after
    answer_prompts, lens_words, lens_weight = (
        dict(words.answer_prompts),
        list(words.lens_words),
        seg.lens_weight,
    )
    torch.manual_seed(seed)
    vocabulary = synthetic.vocabulary(list(answer_prompts.values()))
    if init is None:
        adapter = toy.fresh(vocabulary, synthetic.SIZE, seed)
    else:
        adapter = toy.extend_vocabulary(toy.load(init), vocabulary, seed)
    toy.set_video_positions(adapter, seg.positions)
    adapter.model.to(device).train()
    trainer = ToyTrainer(adapter, device)
    tasks = {**STAGE_TASKS[stage], **(seg.task_weights or {})}
    batcher = Batcher(adapter, tasks, seed, seg.open_ended, answer_prompts, lens_words if lens_weight else ())
    opt = torch.optim.AdamW(trainer.params(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    log_rows, eval_rows, t0 = [], [], time.time()
    eval_tasks = list(STAGE_TASKS[stage])
    diff_w = seg.frame_diff_weight if stage == "video" else 0.0
    for step in range(stop_after or steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, lr, warmup)
        b = batcher.batch(batcher.questions(seg.batch_size))
        f = trainer.forward(b)
        l_answer = F.cross_entropy(f["logits"], f["targets"])
        zero = f["logits"].new_zeros(())
        l_ptr = F.cross_entropy(f["pointer"], b["choice"][f["mc"]].to(device)) if f["mc"] else zero
        l_diff = F.mse_loss(f["frame_diff"], b["frame_diff"].to(device))
        l_lens = _lens_loss(f["lens"], b["lens"]) if f["lens"] is not None else zero
        w = pointer_weight(step, steps)
        loss = l_answer + w * l_ptr + diff_w * l_diff + lens_weight * l_lens
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainer.params(), 1.0)
        opt.step()
        row = dict(
            step=step + 1,
            loss=loss.item(),
            answer=l_answer.item(),
            pointer=l_ptr.item(),
            frame_diff=l_diff.item(),
            lens=l_lens.item(),
            pointer_weight=w,
            lr=opt.param_groups[0]["lr"],
            seconds=round(time.time() - t0, 1),
        )
        log_rows.append(row)
        if (step + 1) % seg.eval_every == 0 or step + 1 == (stop_after or steps):
            acc = trainer.accuracy(batcher, eval_tasks, 64, seed + 10_000)
            eval_rows += [dict(step=step + 1, **a) for a in acc]
            accs = " ".join(
                f"{a['task']}={a['accuracy']:.2f}" + (f"/{a['open_exact']:.2f}" if "open_exact" in a else "")
                for a in acc
            )
            print(
                f"[{stage}] step {step + 1}/{steps} loss {row['loss']:.3f} answer {row['answer']:.3f} "
                f"lens {row['lens']:.3f} ({row['seconds']:.0f} s) held-out MC[/open-ended exact]: {accs}",
                flush=True,
            )
            _write_csv(out / "training_log.csv", log_rows)
            _write_csv(out / "training_eval.csv", eval_rows)
            toy.save_adapter(adapter, out)


def _lens_loss(logits: torch.Tensor, words: list[list[int]]) -> torch.Tensor:
    """Cross-entropy of the video tokens' lens logits [B, n_video, V] against the uniform distribution
    over each clip's answer words (clips without one are left out)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    terms = [-logp[i][:, ids].mean(-1).mean() for i, ids in enumerate(words) if ids]
    return torch.stack(terms).mean()


@dataclass(frozen=True)
class ToyTrainingJob:
    """What the toy models' recipe reads: its segments, the device, and the benchmark's words."""

    recipe: FrozenMap  # image | video -> segments
    device: str
    words: Words

    @classmethod
    def of(cls, s, wc) -> "ToyTrainingJob":
        d = s.datasets["synthetic"]  # the open-ended answer prompts and lens words are the benchmark's
        lens = tuple(w for kind in sorted(d.lens_words) for w in d.lens_words[kind])
        return cls(s.toy_training.recipe, s.toy_training.device, Words(d.answer_prompts, lens))


def train_recipe(job: Job) -> None:
    """Run the whole seeded chain of `config.yaml: toy_training.recipe`: the image segments, each from
    the previous checkpoint, then the video segments starting from the *first* image segment (the
    image model the video fine-tune starts from; later image segments only teach the image model the
    open-ended format). The last segment of each chain writes the model directory (the job's `image`
    and `video` outputs are their weights), earlier ones `<dir>.segment<k>`."""
    from vlmflow.models.loading import resolve_device

    cfg = job.settings
    device = resolve_device(cfg.device)
    segments = {k: [Segment(**dict(seg)) for seg in cfg.recipe[k]] for k in ("image", "video")}
    first_image = _chain("image", segments["image"], job.output.image.parent, None, device, cfg.words)
    _chain("video", segments["video"], job.output.video.parent, first_image, device, cfg.words)


def _chain(
    stage: str, segments: list[Segment], final: Path, init: Path | None, device: str, words: Words
) -> Path:
    """Train `segments` one after another; -> the first segment's output."""
    outs = []
    for k, seg in enumerate(segments):
        out = final if k == len(segments) - 1 else final.with_name(f"{final.name}.segment{k + 1}")
        train(stage, seg, out, init, device, words)
        outs.append(out)
        init = out
    return outs[0]


def _write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", choices=list(STAGE_TASKS), required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--init", type=Path, help="checkpoint to start from (video stage: the image model)")
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0)
    # the segment's other settings: Segment's defaults unless given
    ap.add_argument("--lr", type=float)
    ap.add_argument("--warmup", type=int)
    ap.add_argument("--positions", choices=["frame_shared", "sequential"])
    ap.add_argument("--frame-diff-weight", type=float)
    ap.add_argument("--stop-after", type=int, help="end after this many steps of the --steps schedule")
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--open-ended", type=float, help="share of questions asked open-ended")
    ap.add_argument("--lens-weight", type=float)
    ap.add_argument(
        "--config",
        type=Path,
        default=Path("config.yaml"),
        help="answer prompts and lens words: its synthetic dataset",
    )
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = vars(ap.parse_args(argv))
    import yaml

    from vlmflow.settings import read_config

    words = ToyTrainingJob.of(read_config(yaml.safe_load(args.pop("config").read_text())), None).words
    stage, out, init, device = (args.pop(k) for k in ("stage", "out", "init", "device"))
    seg = Segment(**{k: v for k, v in args.items() if v is not None})
    train(stage, seg, out, init, device, words)


if __name__ == "__main__":
    main()

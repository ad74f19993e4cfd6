"""Seeded training of the embedded toy VideoLLMs (see README, "The embedded toy models").

Stage "image": a fresh toy learns static questions (colour, position) on still clips, as an
ImageLLM learns single images. Stage "video": initialised from the image model, it is fine-tuned on
the five temporal tasks (plus the static ones), as LLaVA-NeXT-Video-FT is from LLaVA-NeXT.

Recipe (models/README.md): AdamW, lr warm-up then cosine, letters
randomised from step 0, and two training-only auxiliary heads that are not saved:
- a pointer head scoring each option's last token against the correct option (weight 1, fading to
  0 between 50 % and 60 % of training); it makes the option tokens gather the video evidence;
- (video stage) a frame-difference head on the video tokens after layer 3, regressing how each
  cell changed since the previous frame; with frame-shared positions this makes video tokens read
  earlier frames.

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
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vlmflow.data import synthetic
from vlmflow.models import toy
from vlmflow.models.base import Adapter
from vlmflow.question import Question

STAGE_TASKS = {
    "image": {t: 1.0 for t in synthetic.STATIC_TASKS},
    "video": {**{t: 1.0 for t in synthetic.TASKS}, **{t: 0.5 for t in synthetic.STATIC_TASKS}},
}
FRAME_DIFF_LAYER = 3  # the frame-difference head reads the output of this decoder layer


class Batcher:
    """Procedurally generated batches: frames, token ids, targets."""

    def __init__(self, adapter: Adapter, tasks: dict[str, float], seed: int):
        self.adapter = adapter
        self.names = list(tasks)
        w = np.array(list(tasks.values()))
        self.p = w / w.sum()
        self.rng = np.random.default_rng(seed)
        proc = adapter.image_processor
        self.mean = torch.tensor(proc.image_mean).view(1, 1, 3, 1, 1)
        self.std = torch.tensor(proc.image_std).view(1, 1, 3, 1, 1)

    def questions(self, n: int, task: str | None = None) -> list[Question]:
        tasks = [task] * n if task else self.rng.choice(self.names, size=n, p=self.p)
        return [synthetic.sample_question(t, self.rng) for t in tasks]

    def batch(self, qs: list[Question]) -> dict:
        frames = np.stack(
            [synthetic.render(q, synthetic.sampled_indices(q)) for q in qs]
        )  # [B, T, S, S, 3] uint8
        x = torch.from_numpy(frames).float().div(255).permute(0, 1, 4, 2, 3)  # [B, T, 3, S, S]
        pixels = (x - self.mean) / self.std  # what the CLIP processor does at native size
        T, H, W = self.adapter.grid
        cells = x.reshape(len(qs), T, 3, H, x.shape[3] // H, W, x.shape[4] // W).mean((4, 6))  # [B,T,3,H,W]
        diff = (cells[:, 1:] - cells[:, :-1]).permute(0, 1, 3, 4, 2).reshape(len(qs), -1, 3)  # [B,(T-1)HW,3]
        enc = [self.adapter.encode(q) for q in qs]
        return dict(
            pixels=pixels,
            frame_diff=diff * 4,
            ids=[e[0] for e in enc],
            layouts=[e[1] for e in enc],
            letters=torch.tensor([e[2][e[1].true_option] for e in enc]),
            answer=torch.tensor([e[1].true_option for e in enc]),
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

    def forward(self, b: dict):
        """-> letter logits [B, V], pointer logits [B, K], frame-diff predictions [B, (T-1)HW, 3]."""
        a, dev = self.a, self.device
        video = a.video_features(b["pixels"].to(dev))  # [B, n_video, d]
        parts = a.decoder()
        rows = [a.embed(ids, lay, video[i]) for i, (ids, lay) in enumerate(zip(b["ids"], b["layouts"]))]
        pos = [a.position_ids(lay) for lay in b["layouts"]]
        n = max(len(r) for r in rows)
        pad = parts.embed_tokens(torch.tensor(a.tokenizer.pad_token_id, device=dev))
        # right padding: with causal attention the real tokens never see the pads
        E = torch.stack([torch.cat([r, pad.expand(n - len(r), -1)]) for r in rows])  # [B, n, d]
        P = torch.stack([torch.cat([p, p[-1] + 1 + torch.arange(n - len(p))]) for p in pos]).to(dev)
        out = parts.text_model(inputs_embeds=E, position_ids=P, output_hidden_states=True)
        final = out.last_hidden_state  # [B, n, d] (after the final norm)
        idx = torch.arange(len(rows), device=dev)
        last = torch.tensor([lay.last for lay in b["layouts"]], device=dev)
        logits = parts.lm_head(final[idx, last])  # [B, V]
        opt_end = torch.tensor([[o[1] - 1 for o in lay.options] for lay in b["layouts"]], device=dev)
        ptr = self.pointer(final[idx[:, None], opt_end]).squeeze(-1)  # [B, K]
        v0, v1 = b["layouts"][0].video_range
        hw = a.grid[1] * a.grid[2]
        mid = out.hidden_states[FRAME_DIFF_LAYER + 1][:, v0 + hw : v1]  # video tokens of frames 1..T-1
        return logits, ptr, self.diff_head(mid)

    @torch.no_grad()
    def accuracy(self, batcher: Batcher, tasks: list[str], n: int, seed: int) -> dict[str, float]:
        """Letter accuracy on freshly drawn held-out questions (own seed) per task."""
        self.a.model.eval()
        rng_state, batcher.rng = batcher.rng, np.random.default_rng(seed)
        acc = {}
        for t in tasks:
            b = batcher.batch(batcher.questions(n, t))
            logits, _, _ = self.forward(b)
            acc[t] = (logits.argmax(-1).cpu() == b["letters"]).float().mean().item()
        batcher.rng = rng_state
        self.a.model.train()
        return acc


def lr_at(step: int, steps: int, lr: float, warmup: int) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    frac = (step - warmup) / max(1, steps - warmup)
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))


def pointer_weight(step: int, steps: int) -> float:
    f = step / steps
    return 1.0 if f < 0.5 else max(0.0, 1 - (f - 0.5) / 0.1)


def train(
    stage: str,
    out: Path,
    steps: int,
    seed: int,
    init: Path | None = None,
    lr: float = 1e-3,
    batch_size: int = 32,
    warmup: int = 100,
    eval_every: int = 200,
    device: str = "cpu",
    positions: str = "frame_shared",
    frame_diff_weight: float = 1.0,
    stop_after: int | None = None,
    task_weights: dict[str, float] | None = None,
) -> None:
    """One training segment; `stop_after` ends it early, keeping the schedule of `steps`;
    `task_weights` overrides the stage's sampling weight of some tasks."""
    torch.manual_seed(seed)
    adapter = toy.fresh(synthetic.vocabulary(), synthetic.SIZE, seed) if init is None else toy.load(init)
    toy.set_video_positions(adapter, positions)
    adapter.model.to(device).train()
    trainer = ToyTrainer(adapter, device)
    batcher = Batcher(adapter, {**STAGE_TASKS[stage], **(task_weights or {})}, seed)
    opt = torch.optim.AdamW(trainer.params(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    log_rows, eval_rows, t0 = [], [], time.time()
    eval_tasks = list(STAGE_TASKS[stage])
    for step in range(stop_after or steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, lr, warmup)
        b = batcher.batch(batcher.questions(batch_size))
        logits, ptr, diff = trainer.forward(b)
        l_letter = F.cross_entropy(logits, b["letters"].to(device))
        l_ptr = F.cross_entropy(ptr, b["answer"].to(device))
        l_diff = F.mse_loss(diff, b["frame_diff"].to(device))
        w = pointer_weight(step, steps)
        loss = l_letter + w * l_ptr + (frame_diff_weight if stage == "video" else 0.0) * l_diff
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainer.params(), 1.0)
        opt.step()
        row = dict(
            step=step + 1,
            loss=loss.item(),
            letter=l_letter.item(),
            pointer=l_ptr.item(),
            frame_diff=l_diff.item(),
            pointer_weight=w,
            lr=opt.param_groups[0]["lr"],
            seconds=round(time.time() - t0, 1),
        )
        log_rows.append(row)
        if (step + 1) % eval_every == 0 or step + 1 == (stop_after or steps):
            acc = trainer.accuracy(batcher, eval_tasks, 64, seed + 10_000)
            eval_rows += [dict(step=step + 1, task=t, accuracy=a) for t, a in acc.items()]
            accs = " ".join(f"{t}={a:.2f}" for t, a in acc.items())
            print(
                f"[{stage}] step {step + 1}/{steps} loss {row['loss']:.3f} letter {row['letter']:.3f} "
                f"({row['seconds']:.0f} s) held-out: {accs}",
                flush=True,
            )
            _write_csv(out / "training_log.csv", log_rows)
            _write_csv(out / "training_eval.csv", eval_rows)
            toy.save_adapter(adapter, out)


def train_recipe(recipe: dict, image_dir: str, video_dir: str, device: str = "auto") -> None:
    """Run the whole seeded chain of `config.yaml: toy_training.recipe`: the image stage, then each
    video segment starting from the previous checkpoint (segments after the first append to the logs
    of the final directory)."""
    from vlmflow.models.loading import resolve_device

    device = resolve_device(device)
    train("image", Path(image_dir), device=device, **recipe["image"])
    init = Path(image_dir)
    for k, seg in enumerate(recipe["video"]):
        out = Path(video_dir) if k == len(recipe["video"]) - 1 else Path(f"{video_dir}.segment{k + 1}")
        train("video", out, init=init, device=device, **seg)
        init = out


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
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--positions", choices=["frame_shared", "sequential"], default="frame_shared")
    ap.add_argument("--frame-diff-weight", type=float, default=1.0)
    ap.add_argument("--stop-after", type=int, help="end after this many steps of the --steps schedule")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)
    train(
        args.stage,
        args.out,
        args.steps,
        args.seed,
        args.init,
        args.lr,
        args.batch_size,
        args.warmup,
        device=args.device,
        positions=args.positions,
        frame_diff_weight=args.frame_diff_weight,
        stop_after=args.stop_after,
    )


if __name__ == "__main__":
    main()

"""Knockout engine vs the paper's reference method, on the same inputs, at paper shape.

The full paper sweep for one sample: cross-frame + vql-to-ql + question-and-options-to-last +
vq-to-true-opt, every layer as a window centre, window 9: (1 + 4 + 3 + 3) x L conditions. The
reference method (knockout/reference.py) runs one full forward per condition plus one baseline per
experiment's script, as the authors' scripts do; the engine runs one clean pass plus its reuse paths.

Shape: 32 layers, 8 frames of 12 x 12 = 1152 video tokens, about 1270 tokens in all (the MVBench
system prompt and a TVBench-length question). On CPU the hidden width is reduced; `--gpu7b` uses
the 7B width (4096, 32 heads, MLP 11008) in bf16 on a GPU. Timings are ratios measured in the same
run on the same machine, never absolute targets. Ends with one line:

RESULT speedup=<full sweep> speedup_no_crossframe=<other three experiments> max_diff=<y> ref_mask_mb=<a>
       ref_mask_mb_7b=<a7> engine_mask_mb=<b> mask_ratio_7b=<b/a7> pathway_max_dp=<d>
       pathway_mask_mb=<c> pathway_ref_mask_mb_7b=<c7>

max_diff is the largest |difference| of the relative change (p_new - p_base) / p_base, as a fraction.
Mask memory: ref_mask_mb is the reference's dense [1, H, N, N] mask of this run's model (one held per
condition); ref_mask_mb_7b the same mask at the 7B shape (32 heads, bf16) for this N, what the paper's
method holds there; engine_mask_mb the most mask memory the engine held at once in any experiment (its
compiled knockouts plus the masks built inside one attention call; one bool per pair, independent of
heads and dtype). Each experiment's own peak is printed on its line. The pathway line (Table 3) compares
one forward with the 7B preset's per-layer rules (masks built when each layer runs) with the paper's
way, every layer's dense mask built first: pathway_mask_mb is the engine's peak, pathway_ref_mask_mb_7b
what the paper's 32 per-layer masks take at 7B shape, pathway_max_dp the largest probability difference.

    python benchmarks/knockout_speed.py --quick     # under a minute on CPU, fewer layers and frames
    python benchmarks/knockout_speed.py             # paper shape, reduced width (CPU: minutes)
    python benchmarks/knockout_speed.py --gpu7b     # 7B-shaped, bf16, one GPU
    python benchmarks/knockout_speed.py --gpu7b --backend flex   # the same with the compiled
        # FlexAttention block-mask path: its speedup over the reference against sdpa's
"""

from __future__ import annotations

import argparse
import platform
import re
import time

import numpy as np
import torch

from vlmflow.data import synthetic
from vlmflow.knockout.engine import KnockoutEngine
from vlmflow.knockout.masks import blocked_pairs, compile_knockout
from vlmflow.knockout.pathways import PRESETS, Pathway
from vlmflow.knockout.reference import dense_mask, reference_probs, reference_probs_layerwise
from vlmflow.knockout.spec import EXPERIMENTS, Condition, Knockout, explicit_window, sweep
from vlmflow.models import toy
from vlmflow.models.llava_video import LlavaVideoAdapter
from vlmflow.prompt import MVBENCH_SYSTEM
from vlmflow.question import Question

# the paper's full sweep of one correctly answered sample (the failure cases' predicted-option
# knockouts need a wrongly answered one)
PAPER_SWEEP = ("cross_frame", "vql_to_ql", "question_and_options_to_last", "vq_to_true_opt")


def build(
    layers: int,
    frames: int,
    hidden: int,
    heads: int,
    kv_heads: int,
    mlp: int,
    dtype,
    device,
    context: int = 4096,
) -> LlavaVideoAdapter:
    """A random-weight model of the LLaVA video family: 24 x 24 patches pooled to 12 x 12 per frame,
    `context` positions."""
    from transformers import LlavaForConditionalGeneration

    # the toy's words, and those of the MVBench system prompt the benchmark's prompt carries
    system = [w for w in re.findall(r"\w+|[^\w\s]", MVBENCH_SYSTEM) if w not in toy.PUNCT]
    tok = toy.build_tokenizer(synthetic.vocabulary() + system)
    cfg = toy.build_model(tok, 0, synthetic.SIZE).config
    v = cfg.vision_config
    v.image_size, v.patch_size, v.hidden_size, v.intermediate_size, v.num_hidden_layers = 96, 4, 32, 64, 2
    t = cfg.text_config
    t.num_hidden_layers, t.hidden_size, t.num_attention_heads = layers, hidden, heads
    t.num_key_value_heads, t.intermediate_size, t.max_position_embeddings = kv_heads, mlp, context
    cfg.pooling_shape = [frames, 12, 12]
    cfg.video_position_ids = "sequential"
    torch.manual_seed(0)
    with torch.device(device):
        model = LlavaForConditionalGeneration(cfg).to(dtype)
    with torch.no_grad():
        model.lm_head.weight.mul_(20)  # peaked, like a trained model's answer distribution
    proc = toy.build_image_processor(synthetic.SIZE)
    proc.size, proc.crop_size = {"shortest_edge": 96}, {"height": 96, "width": 96}
    return LlavaVideoAdapter(model, tok, proc, system_prompt=MVBENCH_SYSTEM)


def question() -> Question:
    q = "In which order do the squares appear and which way does the red square move " * 2
    cands = [
        "red then blue and then left",
        "blue then red and then right",
        "red then green and then up",
        "green then blue and then down",
    ]
    return Question("bench", "bench", "0", q.strip() + "?", cands, 1)


def ref_mask_mb_7b_of(n_tokens: int) -> float:
    """One dense [1, 32, N, N] bf16 mask, what the paper's method holds per condition at 7B shape."""
    return 32 * n_tokens * n_tokens * 2 / 2**20


def timed(fn):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - t


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--quick", action="store_true", help="8 layers, 4 frames, window 3: under a minute on CPU"
    )
    ap.add_argument("--gpu7b", action="store_true", help="7B-shaped model in bf16 on the GPU")
    ap.add_argument(
        "--backend",
        default="sdpa",
        choices=["sdpa", "eager", "flex"],
        help="the engine's attention backend (flex is compiled on CUDA: time it against sdpa there)",
    )
    args = ap.parse_args(argv)
    device = "cuda" if args.gpu7b else "cpu"
    if args.gpu7b and not torch.cuda.is_available():
        ap.error("--gpu7b needs a CUDA GPU")
    dtype = torch.bfloat16 if args.gpu7b else torch.float32
    layers, frames, window = (8, 4, 3) if args.quick else (32, 8, 9)
    width = (
        dict(hidden=4096, heads=32, kv_heads=32, mlp=11008)
        if args.gpu7b
        else dict(hidden=64, heads=4, kv_heads=4, mlp=128)
    )
    a = build(layers, frames, dtype=dtype, device=device, **width)
    q = question()
    rng = np.random.default_rng(0)
    size = a.image_processor.crop_size["height"]
    frames_px = rng.integers(0, 255, size=(frames, size, size, 3), dtype=np.uint8)

    engine = KnockoutEngine(a, backend=args.backend)
    sample = a.prepare(q, a.video_features(a.pixel_values(frames_px)))
    N = sample.layout.n_tokens
    name = torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu"
    print(
        f"device {device} ({name}), "
        f"{dtype}, {layers} layers, width {width['hidden']}, {N} tokens, {a.grid} video grid, "
        f"window {window}, engine backend {args.backend}"
    )

    experiments = {
        f: [Condition(k, w) for k in EXPERIMENTS[f] for w in sweep(layers, window)] for f in PAPER_SWEEP
    }
    ref_t, eng_t, diffs = {}, {}, []
    engine.clean(sample)  # warm-up: the first forward pays one-off allocations, not the method
    clean, t_clean = timed(lambda: engine.clean(sample))
    print(f"  clean pass (shared by every experiment): {t_clean:.2f} s")
    pred = int(clean.probs.argmax())
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    peaks = {}
    for exp, conds in experiments.items():
        engine.peak_mask_bytes = 0
        fast, eng_t[exp] = timed(lambda: engine.run(sample, conds, clean))
        peaks[exp] = engine.peak_mask_bytes / 2**20

        # the paper's scripts: one baseline forward per experiment, then one full forward per condition
        def ref_sweep():
            base = reference_probs(
                a, q, frames_px, Condition(Knockout("none", ()), explicit_window([0], layers))
            )
            return base, torch.stack([reference_probs(a, q, frames_px, c) for c in conds])

        (_, ref), ref_t[exp] = timed(ref_sweep)
        rel = lambda p: (p[:, pred] - clean.probs[pred]) / clean.probs[pred]  # noqa: E731
        diffs.append(float((rel(fast) - rel(ref)).abs().max()))
        print(
            f"  {exp:30s} {len(conds):4d} conditions: reference {ref_t[exp]:8.2f} s  "
            f"engine {eng_t[exp]:7.2f} s  "
            f"x{ref_t[exp] / eng_t[exp]:6.1f}  max|diff| {diffs[-1]:.2e}  engine masks {peaks[exp]:.2f} MiB",
            flush=True,
        )
    # Table 3: one forward with a different mask in every layer; the reference builds all of them first
    path = (
        PRESETS["llava-next-7b-video-ft"]
        if layers == 32
        else Pathway("quick", layers, (1, 3), (1, 5), (4, 8))
    )
    engine.peak_mask_bytes = 0
    fast_p, t_path = timed(
        lambda: engine.run_layerwise(
            sample, lambda l: compile_knockout(sample.layout, path.knockout(l)), clean
        )
    )
    path_mb = engine.peak_mask_bytes / 2**20
    dense = [blocked_pairs(sample.layout, path.knockout(l)) for l in range(layers)]
    ref_p, t_ref_path = timed(lambda: reference_probs_layerwise(a, q, frames_px, lambda l: dense[l]))
    path_diff = float((fast_p - ref_p).abs().max())
    path_ref_mb_7b = 32 * ref_mask_mb_7b_of(N)
    print(
        f"  {'pathway (' + path.name + ')':30s}    1 forward:    reference {t_ref_path:8.2f} s  "
        f"engine {t_path:7.2f} s  "
        f"x{t_ref_path / t_path:6.1f}  max|dp| {path_diff:.2e}  engine masks {path_mb:.2f} MiB "
        f"(the paper's per-layer masks at 7B shape: {path_ref_mb_7b:.0f} MiB)",
        flush=True,
    )
    # probes (Figs. 4, 9): the states of one clean pass one at a time, the lens on every video token
    from vlmflow.probes import probe

    _, t_probe = timed(lambda: probe(engine, sample, True, ["embedding"], 5))
    vocab_7b, chunk = 32000, 64 * 2**20
    print(
        f"  probes (answer probability + lens, {N} tokens x {layers + 1} states): {t_probe:.2f} s; "
        f"held at once: one state [N, d] and at most {chunk / 2**20:.0f} MiB of logits "
        f"({chunk // (4 * vocab_7b)} positions x {vocab_7b}), against "
        f"{41 * 1152 * vocab_7b * 4 / 2**30:.1f} GiB for every video token of all 41 states of a 13B model",
        flush=True,
    )
    other = [f for f in experiments if f != "cross_frame"]
    speedup = sum(ref_t.values()) / (t_clean + sum(eng_t.values()))
    speedup_other = sum(ref_t[f] for f in other) / (t_clean + sum(eng_t[f] for f in other))
    ref_mask = dense_mask(sample.layout, experiments["cross_frame"][0], a.n_heads, dtype)
    ref_mask_mb = ref_mask.numel() * ref_mask.element_size() / 2**20  # one [1, H, N, N] mask held per config
    ref_mask_mb_7b = ref_mask_mb_7b_of(N)
    engine_mask_mb = max(peaks.values())
    cache_mb = sum(
        t.numel() * t.element_size() for t in [*clean.hidden_in, *(x for kv in clean.kv for x in kv)]
    )
    print(
        "engine clean-pass cache (hidden states entering each layer + keys/values): "
        f"{cache_mb / 2**20:.1f} MiB"
    )
    if device == "cuda":
        print(f"peak GPU memory of the whole comparison: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
    print(
        f"RESULT speedup={speedup:.1f} speedup_no_crossframe={speedup_other:.1f} max_diff={max(diffs):.2e} "
        f"ref_mask_mb={ref_mask_mb:.1f} ref_mask_mb_7b={ref_mask_mb_7b:.1f} "
        f"engine_mask_mb={engine_mask_mb:.2f} "
        f"mask_ratio_7b={engine_mask_mb / ref_mask_mb_7b:.3f} pathway_max_dp={path_diff:.2e} "
        f"pathway_mask_mb={path_mb:.2f} pathway_ref_mask_mb_7b={path_ref_mb_7b:.0f}"
    )


if __name__ == "__main__":
    main()

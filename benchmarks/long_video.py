"""Long videos: time and memory of the engine as the sequence grows, beside the paper's reference
method where that fits.

A random-weight model of the LLaVA video family at reduced width (4 layers, width 64, 4 heads, fp32,
one CPU thread), 144 video tokens per frame, with 8, 16, 32 and 64 frames (N about 1.3k, 2.4k, 4.7k,
9.3k) and 112 frames (about 16k, a Qwen-like length). For each length:
- each knockout experiment of the paper's sweep, every layer as a window centre (window 1);
- the pathway forward (Table 3: a different mask in every layer);
- the probes (Figs. 4, 9: the answer probability and the logit lens on every state);
- the reference (one dense-mask forward per cross-frame condition), only where its masks and eager
  scores fit in half the memory the machine has free; otherwise one line says why not.
Per run (in a forked process, so that the resident high-water mark is its own): seconds, the
process's memory growth over the prepared sample (resident peak minus resident size before the run),
and the engine's own count of the memory it held at once: its masks (the packed ones and what its
attention calls unpack), its masks with the float scores and masks its attention calls built beside
them (its working set), and its packed masks alone per distinct knockout over N^2/8 bytes (one bit
per pair: at most 1).

Ends with a RESULT line: the growth exponents in N (least squares on log-log) of time and memory
for each workload, the process memory per (query, key) pair of cross-frame at the longest length,
and the engine's working set as a share of the process's measured growth there:

RESULT time_exp_<w>=<a> mem_exp_<w>=<b> ... bytes_per_pair=<c> engine_share=<d> held_over_n2_8=<h>
       max_diff=<e> longest_n=<n>

    python benchmarks/long_video.py --quick    # 2, 4 and 8 frames: about a minute
    python benchmarks/long_video.py            # 8 to 112 frames: 7-10 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import knockout_speed  # noqa: E402

from vlmflow.knockout.engine import KnockoutEngine  # noqa: E402
from vlmflow.knockout.masks import compile_knockout  # noqa: E402
from vlmflow.knockout.pathways import Pathway  # noqa: E402
from vlmflow.knockout.reference import reference_probs  # noqa: E402
from vlmflow.knockout.spec import EXPERIMENTS, Condition, sweep  # noqa: E402
from vlmflow.probes import probe  # noqa: E402

LAYERS = 4
WIDTH = dict(hidden=64, heads=4, kv_heads=4, mlp=128)
WORKLOADS = (*knockout_speed.PAPER_SWEEP, "pathway", "probes", "reference")
PATHWAY = Pathway("long", LAYERS, (1, 2), (1, 3), (2, 4))


def rss_mib() -> float:
    """The process's resident size now."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 2**10
    raise RuntimeError("no VmRSS in /proc/self/status")


def free_mib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 2**10
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def reference_mib(n: int) -> float:
    """What one reference forward holds at least: its dense fp32 [1, H, N, N] mask and, per layer, the
    eager scores, their masked copy and the probabilities."""
    return 4 * WIDTH["heads"] * n * n * 4 / 2**20


def one(frames: int, workload: str) -> dict:
    """Run one workload at one length in this process -> its measurements."""
    torch.set_num_threads(1)
    a = knockout_speed.build(LAYERS, frames, dtype=torch.float32, device="cpu", context=32768, **WIDTH)
    q = knockout_speed.question()
    size = a.image_processor.crop_size["height"]
    px = np.random.default_rng(0).integers(0, 255, size=(frames, size, size, 3), dtype=np.uint8)
    sample = a.prepare(q, a.video_features(a.pixel_values(px)))
    n = sample.layout.n_tokens
    engine = KnockoutEngine(a)
    conds = [Condition(k, w) for k in EXPERIMENTS["cross_frame"] for w in sweep(LAYERS, 1)]
    if workload == "reference" and reference_mib(n) > free_mib() / 2:
        need, free = reference_mib(n), free_mib() / 2
        return dict(n=n, skipped=f"the reference needs about {need:.0f} MiB, half of free is {free:.0f}")
    before = rss_mib()
    t = time.perf_counter()
    with torch.no_grad():
        if workload in EXPERIMENTS:
            conds = [Condition(k, w) for k in EXPERIMENTS[workload] for w in sweep(LAYERS, 1)]
            out = engine.run(sample, conds)
        elif workload == "pathway":
            out = engine.run_layerwise(sample, lambda l: compile_knockout(sample.layout, PATHWAY.knockout(l)))
        elif workload == "probes":
            probe(engine, sample, True, ["embedding", "lm_head"], 3)
            out = None
        else:
            out = torch.stack([reference_probs(a, q, px, c) for c in conds])
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # KiB on Linux
    growth = max(peak - before, 0.0)
    row = dict(n=n, seconds=seconds, growth_mib=growth, engine_mib=engine.peak_mask_bytes / 2**20)
    row["working_mib"] = engine.peak_working_bytes / 2**20
    # the packed masks held at once, per distinct knockout, over one bit per (query, key) pair
    distinct = 1 if workload == "pathway" else len({c.knockout for c in conds})
    row["bits_ratio"] = engine.peak_held_bytes / distinct / (n * n / 8)
    if workload == "reference":  # the engine on the same conditions, for the comparison
        row["diff"] = float((out - engine.run(sample, conds)).abs().max())
    return row


def exponent(ns, ys) -> float:
    """The slope of log y over log n (least squares)."""
    pts = [(math.log(n), math.log(y)) for n, y in zip(ns, ys) if y > 0]
    if len(pts) < 2:
        return float("nan")
    x, y = np.array(pts).T
    return float(np.polyfit(x, y, 1)[0])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2, 4 and 8 frames: about a minute")
    args = ap.parse_args(argv)
    fork = multiprocessing.get_context("fork")
    lengths = (2, 4, 8) if args.quick else (8, 16, 32, 64, 112)
    print(f"{LAYERS} layers, width {WIDTH['hidden']}, {WIDTH['heads']} heads, fp32, 1 CPU thread")
    head = ("workload", "frames", "N", "seconds", "growth MiB", "masks MiB", "working MiB", "held/(N^2/8)")
    print(f"{head[0]:30s} " + " ".join(f"{h:>{max(6, len(h))}s}" for h in head[1:]))
    found: dict[str, list[dict]] = {w: [] for w in WORKLOADS}
    diffs = []
    for frames in lengths:
        for w in WORKLOADS:
            with fork.Pool(1) as pool:  # a fresh process: its resident peak is this run's
                row = pool.apply(one, (frames, w))
            if "skipped" in row:
                print(f"{w:30s} {frames:6d} {row['n']:6d}  not run: {row['skipped']}", flush=True)
                continue
            found[w].append(row)
            if "diff" in row:
                diffs.append(row["diff"])
            print(
                f"{w:30s} {frames:6d} {row['n']:6d} {row['seconds']:7.2f} {row['growth_mib']:10.1f} "
                f"{row['engine_mib']:9.1f} {row['working_mib']:11.1f} {row['bits_ratio']:12.3f}",
                flush=True,
            )
    parts = []
    for w, rows in found.items():
        ns = [r["n"] for r in rows]
        parts.append(f"time_exp_{w}={exponent(ns, [r['seconds'] for r in rows]):.2f}")
        parts.append(f"mem_exp_{w}={exponent(ns, [r['growth_mib'] for r in rows]):.2f}")
    last = found["cross_frame"][-1]
    n = last["n"]
    per_pair = last["growth_mib"] * 2**20 / (n * n)
    share = last["working_mib"] / last["growth_mib"] if last["growth_mib"] > 0 else float("nan")
    max_diff = max(diffs) if diffs else float("nan")
    held = max(r["bits_ratio"] for w, rows in found.items() if w != "reference" for r in rows)
    print(
        f"RESULT {' '.join(parts)} bytes_per_pair={per_pair:.1f} engine_share={share:.2f} "
        f"held_over_n2_8={held:.3f} max_diff={max_diff:.2e} longest_n={n}"
    )


if __name__ == "__main__":
    main()

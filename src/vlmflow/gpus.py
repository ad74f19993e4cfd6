"""Pin a job to its own GPUs before CUDA starts.

Snakemake counts GPUs (`--resources gpu=N`) but does not say which device a job may use. A job
that holds `n` GPUs claims `n` free devices with one lock file per device (an `flock`, released by
the kernel when the process ends, even on SIGKILL) and hides the others through
CUDA_VISIBLE_DEVICES; a job that holds none sees no GPU at all. Under Slurm the scheduler has
already set CUDA_VISIBLE_DEVICES for the job's allocation, and that is kept.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import tempfile
import time
from pathlib import Path

_held: list = []  # open lock files: the claim lasts as long as the process


def physical_gpus() -> list[str]:
    """Indices of the GPUs this process may use, read without starting CUDA."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d for d in visible.split(",") if d.strip()]
    try:
        query = ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"]
        out = subprocess.run(query, capture_output=True, text=True, timeout=30)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return []
    return out.stdout.split() if out.returncode == 0 else []


def lock_dir() -> Path:
    return Path(os.environ.get("VLMFLOW_GPU_LOCK_DIR", Path(tempfile.gettempdir()) / "vlmflow-gpu-locks"))


def claim(n: int, wait_s: float = 5.0, devices: list[str] | None = None) -> str:
    """Reserve `n` GPUs for this process and return the torch device to use ("cpu" when n == 0)."""
    if n == 0:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        return "cpu"
    if "SLURM_JOB_ID" in os.environ and os.environ.get("CUDA_VISIBLE_DEVICES"):
        return "cuda"  # the scheduler's allocation
    devices = physical_gpus() if devices is None else devices
    if len(devices) < n:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        raise RuntimeError(
            f"this job needs {n} GPU(s) but {len(devices)} are visible (CUDA_VISIBLE_DEVICES="
            f"{visible!r}); set the model's gpu: 0 in config.yaml to run it on the CPU"
        )
    lock_dir().mkdir(parents=True, exist_ok=True)
    announced = False
    while True:
        got = []
        for d in devices:
            fh = open(lock_dir() / f"gpu{d}.lock", "w")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                continue
            got.append((d, fh))
            if len(got) == n:
                break
        if len(got) == n:
            _held.extend(fh for _, fh in got)
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(d for d, _ in got)
            print(f"[gpus] pinned to GPU {os.environ['CUDA_VISIBLE_DEVICES']}", flush=True)
            return "cuda"
        for _, fh in got:
            fh.close()
        if not announced:
            print(
                f"[gpus] waiting for {n} free GPU(s) of {devices} "
                "(run with --resources gpu=<number of GPUs>)",
                flush=True,
            )
            announced = True
        time.sleep(wait_s)

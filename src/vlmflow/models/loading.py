"""Load a model from its workflow config entry (family, hub id or local path, dtype, device)."""

from __future__ import annotations

import torch

from vlmflow.models import load_adapter
from vlmflow.prompt import MVBENCH_SYSTEM
from vlmflow.provenance import provenance

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(device: str = "auto") -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but no CUDA GPU is visible")
    return device


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    """"auto" = bf16 on GPU, fp32 on CPU."""
    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be 'auto' or one of {sorted(DTYPES)}, got {dtype!r}")
    return DTYPES[dtype]


def system_prompt(value: str) -> str:
    from vlmflow.models import toy

    return {"mvbench": MVBENCH_SYSTEM, "toy": toy.SYSTEM_PROMPT}.get(value, value)


def load_from_config(m: dict):
    device = resolve_device(m.get("device", "auto"))
    dtype = resolve_dtype(m.get("dtype", "auto"), device)
    extra = {k: m[k] for k in ("pooling_shape", "device_map") if m.get(k) is not None}
    return load_adapter(m["family"], m["path"], dtype=dtype, device=device,
                        system_prompt=system_prompt(m.get("system_prompt", "mvbench")), **extra)


def load_for_job(m: dict, gpus: int):
    """Load a model inside a rule's job: with `device: auto` it runs on the GPUs the job holds
    (pinned, see vlmflow.gpus) or on the CPU when it holds none; an explicit device is used as given."""
    from vlmflow.gpus import claim

    if m.get("device", "auto") == "auto":
        m = {**m, "device": claim(gpus)}
    return load_from_config(m)


def model_provenance(adapter, m: dict, knockout: dict, n_frames: int, seed: int) -> dict:
    dtype = str(adapter.model.dtype).removeprefix("torch.")
    revision = getattr(adapter.model.config, "_commit_hash", None)  # hub snapshot, None for local dirs
    return provenance(m["path"], dtype, knockout["attention_backend"], knockout["engine"], n_frames, seed,
                      adapter.grid, revision)

"""Load a model from its settings record (family, hub id or local path, dtype, device, the family's
own settings), and the provenance columns of the rows it produces."""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

import torch

from vlmflow.models import adapter_class, load_adapter
from vlmflow.models.weights import check_weight_files
from vlmflow.prompt import MVBENCH_SYSTEM, VIDEO_CHATGPT_SYSTEM
from vlmflow.provenance import provenance

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(device: str = "auto") -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but no CUDA GPU is visible")
    return device


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    """ "auto" = bf16 on GPU, fp32 on CPU."""
    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be 'auto' or one of {sorted(DTYPES)}, got {dtype!r}")
    return DTYPES[dtype]


def system_prompt(value: str) -> str:
    from vlmflow.models import toy

    named = {"mvbench": MVBENCH_SYSTEM, "toy": toy.SYSTEM_PROMPT, "video_chatgpt": VIDEO_CHATGPT_SYSTEM}
    return named.get(value, value)


def _looks_local(path: str) -> bool:
    """A path that can only mean a local directory, never a hub id (owner/name)."""
    return (
        os.path.isabs(path)
        or path.startswith(("./", "../", "~"))
        or path.count("/") >= 2
        or Path(path.split("/")[0]).is_dir()
    )


def check_model_path(name: str, path: str) -> None:
    """Raise ValueError when the model's `path` is clearly a local directory and does not exist."""
    local = Path(path).expanduser()
    if _looks_local(path) and not local.is_dir():
        raise ValueError(
            f"model {name!r}: path {path!r} was looked for as a local directory relative to the "
            f"working directory, {local.resolve()}, and does not exist; set its `path` in "
            "config.yaml to an existing directory or a Hugging Face hub id (owner/name)"
        )


def load_from_config(load, name: str | None = None):
    """Load a model from its `ModelLoad` record (`name`, its key in the config, labels errors): a
    local directory, else a hub id, from the Hugging Face cache only when HF_HUB_OFFLINE=1."""
    import huggingface_hub as hf
    from huggingface_hub.errors import HFValidationError

    options = adapter_class(load.family).settings_of(
        dict(load.options), load.device_map, f"model {name or load.path!r}"
    )
    device = resolve_device(load.device)
    kw = dict(
        dtype=resolve_dtype(load.dtype, device),
        device=device,
        system_prompt=system_prompt(load.system_prompt),
        **options,
    )
    if load.pooling_shape is not None:
        kw["pooling_shape"] = tuple(load.pooling_shape)
    if load.device_map is not None:
        kw["device_map"] = load.device_map
    path, local = load.path, Path(load.path).expanduser()
    name = name or path
    check_model_path(name, path)
    if local.is_dir():
        check_weight_files(local, path)
        return _named(load_adapter(load.family, str(local), **kw), path)
    offline = hf.is_offline_mode()
    try:
        cached = hf.try_to_load_from_cache(path, "config.json")
        if offline and not isinstance(cached, str):
            raise FileNotFoundError("not in the cache")
        if isinstance(cached, str):  # the snapshot's weights whole, before transformers reads them
            check_weight_files(Path(cached).parent, path)
        return _named(load_adapter(load.family, path, **kw), path)
    except (OSError, HFValidationError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        fix = "set its `path` in config.yaml to an existing directory or a hub id" + (
            " downloaded beforehand (huggingface-cli download)" if offline else ""
        )
        raise OSError(
            f"model {name!r}: cannot load {path!r}: not a local directory; looked up in the "
            f"Hugging Face cache (offline: {'yes' if offline else 'no'}): {reason}; {fix}"
        ) from err


def _named(adapter, path: str):
    adapter.model_id = path
    return adapter


def load_for_job(load, gpus: int, name: str | None = None):
    """Load a model inside a rule's job: with `device: auto` it runs on the GPUs the job holds
    (pinned, see vlmflow.gpus) or on the CPU when it holds none; an explicit device is used as given."""
    from dataclasses import replace

    from vlmflow.gpus import claim

    if load.device == "auto":
        load = replace(load, device=claim(gpus))
    return load_from_config(load, name)


BIG_FILE = 64 * 2**20


@lru_cache
def content_hash(directory: Path) -> str:
    """sha256:<16 hex> of a local checkpoint (pass it resolved; computed once per process): every file
    by sorted relative name, in full up to 64 MiB, bigger ones by name, size and, for .safetensors, the
    JSON header. Hidden entries (e.g. the hub's download metadata) are left out."""
    h = hashlib.sha256()
    files = sorted(
        (f.relative_to(directory).as_posix(), f)
        for f in directory.rglob("*")
        if f.is_file() and not any(p.startswith(".") for p in f.relative_to(directory).parts)
    )
    for rel, f in files:
        size = f.stat().st_size
        h.update(f"{rel}\0{size}\0".encode())
        if size <= BIG_FILE:
            h.update(f.read_bytes())
        elif f.suffix == ".safetensors":
            with open(f, "rb") as fh:
                h.update(fh.read(int.from_bytes(fh.read(8), "little")))
    return "sha256:" + h.hexdigest()[:16]


def model_provenance(adapter, path: str, stamp) -> dict:
    """Provenance columns of a model's rows: the path as configured and its revision (the hub commit,
    or the content hash of a local directory), and the run's `Stamp`."""
    dtype = str(adapter.dtype).removeprefix("torch.")
    local = Path(path).expanduser()
    revision = (
        content_hash(local.resolve())
        if local.is_dir()
        else getattr(adapter.model.config, "_commit_hash", None)
    )
    return provenance(path, dtype, stamp, adapter.grid, revision, adapter.settings)

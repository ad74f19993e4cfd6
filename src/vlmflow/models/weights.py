"""Checkpoints in a released format that transformers does not read as is: the config read by
hand, the tokenizer from its own files, the weights renamed by the family's adapter and filled into
transformers' own classes strictly. No code shipped with a checkpoint is run."""

from __future__ import annotations

from pathlib import Path

import torch


def released_config(path: str, model_type: str, family: str, example: str) -> tuple[Path, dict]:
    """The checkpoint's directory and its config.json, which must be of `model_type`."""
    import json

    local = local_snapshot(path)
    config = json.loads((local / "config.json").read_text())
    if config.get("model_type") != model_type:
        raise ValueError(
            f"checkpoint {path} is a {config.get('model_type')!r} model; the {family} family reads the "
            f"released format (model_type {model_type!r}, as {example})"
        )
    return local, config


def released_tokenizer(local: Path, path: str, required: str):
    """The tokenizer from its own files (not through the checkpoint's config, which names remote
    code) and the id of a token the prompt needs."""
    from transformers import AutoTokenizer, PreTrainedConfig

    tokenizer = AutoTokenizer.from_pretrained(str(local), trust_remote_code=False, config=PreTrainedConfig())
    token = tokenizer.convert_tokens_to_ids(required)
    if token is None or token == tokenizer.unk_token_id:
        raise ValueError(f"checkpoint {path}: the tokenizer has no {required} token")
    return tokenizer, token


def check_weight_files(directory: Path, path: str) -> None:
    """Every .safetensors file of a checkpoint whole, before anything loads: its header readable and
    every tensor's bytes present (a partial download fails here, naming the file)."""
    import json

    for f in sorted(Path(directory).glob("*.safetensors")):
        size = f.stat().st_size
        try:
            with open(f, "rb") as fh:
                n = int.from_bytes(fh.read(8), "little")
                if not 0 < n <= size - 8:
                    raise ValueError("header length out of the file")
                header = json.loads(fh.read(n))
            end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            raise ValueError(
                f"checkpoint {path}: weight file {f} is corrupt (its safetensors header cannot be "
                "read); download or copy it again"
            ) from None
        if 8 + n + end > size:
            raise ValueError(
                f"checkpoint {path}: weight file {f} is truncated ({size} of {8 + n + end} bytes); "
                "download or copy it again"
            )


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"checkpoint {path} has no .safetensors weights")
    state = {}
    for f in files:
        state.update(load_file(str(f)))
    return state


def local_snapshot(path: str) -> Path:
    """A local directory, or the hub snapshot of `path` (downloaded, or from the cache offline)."""
    if Path(path).expanduser().is_dir():
        return Path(path).expanduser()
    from huggingface_hub import snapshot_download

    local = Path(snapshot_download(path, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt"]))
    check_weight_files(local, path)
    return local


def cached_config(path: str) -> dict | None:
    """A checkpoint's config.json without downloading: from a local directory, or from the Hugging
    Face cache when it is there; None otherwise."""
    import json

    local = Path(path).expanduser()
    if local.is_dir():
        f = local / "config.json"
        return json.loads(f.read_text()) if f.is_file() else None
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(path, "config.json")
    except Exception:  # not a hub id either: nothing to read before loading
        return None
    return json.loads(Path(found).read_text()) if isinstance(found, str) else None


def fill_strictly(cls, config, state: dict[str, torch.Tensor], path, dtype: torch.dtype, device: str):
    """A transformers model class + its config, built on the meta device and filled with `state`
    (transformers' names): a missing, unexpected or misshaped weight is an error, none is re-initialised."""
    with torch.device("meta"):
        model = cls(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [k for k in set(expected) & set(state) if expected[k].shape != state[k].shape]
    if missing or unexpected or shapes:
        raise ValueError(
            f"checkpoint {path}: {len(missing)} weights missing (e.g. {missing[:3]}), {len(unexpected)} "
            f"unexpected (e.g. {unexpected[:3]}), {len(shapes)} misshaped (e.g. {sorted(shapes)[:3]}); "
            "a partial download, or a config.json that is not the one saved with these weights"
        )
    state = {
        k: v.to(device=device, dtype=dtype if v.is_floating_point() else v.dtype) for k, v in state.items()
    }
    model.load_state_dict(state, strict=True, assign=True)
    _rebuild_buffers(model, device)  # fp32, as transformers computes them
    model.config.dtype = dtype
    return model.eval()


def _rebuild_buffers(model, device: str) -> None:
    """Recompute the non-persistent buffers (rotary frequencies) that the meta build left empty."""
    for name, module in model.named_modules():
        if any(b.is_meta for b in module.buffers(recurse=False)):
            if not hasattr(module, "inv_freq"):
                raise RuntimeError(f"{name}: a buffer was not loaded and cannot be recomputed")
            parent, _, attr = name.rpartition(".")
            with torch.device(device):
                rebuilt = type(module)(config=module.config)
            setattr(model.get_submodule(parent) if parent else model, attr, rebuilt)


class Renames:
    """A released format's weight names and transformers' names, as (released, native) pattern pairs:
    `{i}` stands for a number (a layer index), `{w}` for a word; a pattern ending in "." names a
    prefix, any other a whole name. One table serves both ways: `native` when loading the released
    format, `released` when writing it (the tests' fixtures)."""

    def __init__(self, pairs: list[tuple[str, str]]):
        self.pairs = list(pairs)
        self._fwd = [(_pattern(a), b) for a, b in self.pairs]
        self._back = [(_pattern(b), a) for a, b in self.pairs]

    def native(self, key: str) -> str:
        return _apply(self._fwd, key, "has no place in transformers' model")

    def released(self, key: str) -> str:
        return _apply(self._back, key, "has no released name")


def _pattern(template: str):
    import re

    parts = re.split(r"(\{[iw]\})", template)
    body = "".join(
        {"{i}": r"(?P<i>\d+)", "{w}": r"(?P<w>\w+?)"}.get(p, re.escape(p)) if p else "" for p in parts
    )
    return re.compile("^" + body + ("" if template.endswith(".") else "$"))


def _apply(table, key: str, what: str) -> str:
    for pattern, target in table:
        m = pattern.match(key)
        if m:
            return target.format(**m.groupdict()) + key[m.end() :]
    raise ValueError(f"weight {key!r} {what}")

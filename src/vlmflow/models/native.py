"""Checkpoints that transformers reads as they are (the llava-hf and OpenGVLab `-hf` repositories):
the model through transformers' own `from_pretrained`, strictly, and the files beside it that the
families' processors read (which need torchvision here, so the adapters read them themselves)."""

from __future__ import annotations

import json
from pathlib import Path

import torch


def strict_from_pretrained(model_cls, path: str, dtype: torch.dtype, device: str, device_map=None):
    """`model_cls.from_pretrained(path)`: a missing, unexpected or misshaped weight is an error, never
    a silently re-initialised layer. Placed on `device`, or split by `device_map`."""
    try:
        model, info = model_cls.from_pretrained(
            path, dtype=dtype, device_map=device_map, output_loading_info=True
        )
    except RuntimeError as err:
        if "mismatch" not in str(err):
            raise
        raise ValueError(
            f"checkpoint {path}: a weight has an unexpected shape (see the load report above); "
            "is the config.json the one saved with these weights?"
        ) from err
    missing, unexpected = sorted(info["missing_keys"]), sorted(info["unexpected_keys"])
    if missing or unexpected:
        raise ValueError(
            f"checkpoint {path}: {len(missing)} weights missing (e.g. {missing[:3]}), {len(unexpected)} "
            f"unexpected (e.g. {unexpected[:3]}); a partial download or a checkpoint of another "
            "architecture"
        )
    return (model if device_map is not None else model.to(device)).eval()


def model_type(path: str) -> str | None:
    """The `model_type` of a checkpoint's config.json (hub id or local directory), read as a file:
    a checkpoint that names remote code is never asked to run it."""
    from transformers import PreTrainedConfig

    return PreTrainedConfig.get_config_dict(path)[0].get("model_type")


def check_model_type(
    path: str, expected: str, family: str, checkpoints: str, hints: dict | None = None
) -> None:
    """The checkpoint is of `expected` model type, else a ValueError naming the type found, the family
    and what it takes (`checkpoints`), with a hint for a type that has a family of its own."""
    kind = model_type(path)
    if kind != expected:
        hint = (hints or {}).get(kind, "")
        raise ValueError(
            f"checkpoint {path} is a {kind!r} model; the {family} family takes {checkpoints} "
            f"(model_type {expected!r}){hint}"
        )


def processor_file(path: str) -> tuple[str, dict]:
    """The checkpoint's video processor settings as stored: `video_preprocessor_config.json`, else
    `preprocessor_config.json` (transformers' own fallback); (file name, its dict)."""
    for name in ("video_preprocessor_config.json", "preprocessor_config.json"):
        found = checkpoint_file(path, name)
        if found is not None:
            return name, json.loads(found.read_text())
    raise ValueError(
        f"checkpoint {path}: no video_preprocessor_config.json or preprocessor_config.json; copy the "
        "processor files of its hub repository beside the weights"
    )


def checkpoint_file(path: str, name: str) -> Path | None:
    """A file of a checkpoint (local directory, or hub id: downloaded, or from the cache offline), or
    None where the checkpoint has none."""
    local = Path(path).expanduser()
    if local.is_dir():
        return local / name if (local / name).is_file() else None
    from transformers.utils import cached_file

    found = cached_file(path, name, _raise_exceptions_for_missing_entries=False)
    return Path(found) if found else None


def chat_template(path: str, tokenizer) -> str:
    """The checkpoint's chat template: `chat_template.jinja`, else `chat_template.json` (the
    processor's), else the tokenizer's own."""
    jinja = checkpoint_file(path, "chat_template.jinja")
    if jinja is not None:
        return jinja.read_text()
    processor = checkpoint_file(path, "chat_template.json")
    if processor is not None:
        return json.loads(processor.read_text())["chat_template"]
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.chat_template
    raise ValueError(
        f"checkpoint {path}: no chat template (chat_template.jinja, chat_template.json, or the "
        "tokenizer_config.json's chat_template); use the processor files saved with this checkpoint"
    )


def pil_resize_processor(size: tuple[int, int], resample, rescale_factor: float, mean, std, **switches):
    """A video processor's steps for a square input, run through transformers' PIL backend: resize
    straight to `size` (height, width; no crop), rescale, normalise (`switches`: do_resize,
    do_rescale, do_normalize, do_convert_rgb)."""
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    return CLIPImageProcessorPil(
        size={"height": size[0], "width": size[1]},
        resample=resample,
        do_center_crop=False,
        rescale_factor=rescale_factor,
        image_mean=list(mean),
        image_std=list(std),
        **switches,
    )

"""Model adapters, one file per VideoLLM family, looked up by family name."""

from __future__ import annotations

FAMILIES = {
    "llava_video": "vlmflow.models.llava_video:LlavaVideoAdapter",
    "llava_next_video": "vlmflow.models.llava_next_video:LlavaNextVideoAdapter",
    "llava_onevision": "vlmflow.models.llava_onevision:LlavaOnevisionAdapter",
    "internvl": "vlmflow.models.internvl:InternVLAdapter",
    "internvl_hf": "vlmflow.models.internvl_hf:InternVLHFAdapter",
    "videollama3": "vlmflow.models.videollama3:VideoLlama3Adapter",
    "qwen2_5_vl": "vlmflow.models.qwen2_5_vl:Qwen25VLAdapter",
    "qwen3_vl": "vlmflow.models.qwen3_vl:Qwen3VLAdapter",
}


def adapter_class(family: str):
    """The adapter class of a model family (what the family supports is stated on it)."""
    import importlib

    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; supported: {sorted(FAMILIES)}")
    module, name = FAMILIES[family].split(":")
    return getattr(importlib.import_module(module), name)


def load_adapter(family: str, path: str, **kw):
    """Load a checkpoint (hub id or local directory) through its family's adapter."""
    return adapter_class(family).from_pretrained(path, **kw)

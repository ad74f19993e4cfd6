"""Model adapters, one file per VideoLLM family, looked up by family name."""

from __future__ import annotations

FAMILIES = {
    "llava_video": "vlmflow.models.llava_video",
    "internvl": "vlmflow.models.internvl",
    "videollama3": "vlmflow.models.videollama3",
}


def load_adapter(family: str, path: str, **kw):
    """Load a checkpoint (hub id or local directory) through its family's adapter."""
    import importlib

    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; supported: {sorted(FAMILIES)}")
    return importlib.import_module(FAMILIES[family]).load(path, **kw)

"""Provenance columns stamped on every result row."""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Stamp:
    """The settings of a run that every result row records (besides the model's own)."""

    attention_backend: str
    engine: str
    n_frames: int
    frame_sampling: str
    seed: int
    short_clips: str = "skip"  # skip | repeat: whether a clip's frames may repeat

    @classmethod
    def of(cls, s, dataset: str) -> "Stamp":
        k, d = s.knockout, s.datasets[dataset]
        return cls(
            k.attention_backend, k.engine, d.n_frames or s.n_frames, d.frame_sampling, s.seed, d.short_clips
        )


def grid_text(grid: tuple[int, int, int]) -> str:
    """A video grid (T, H, W) as the rows' `pooling` column writes it: "8-12-12"."""
    return "-".join(map(str, grid))


def sample_provenance(provenance: dict, layout) -> dict:
    """A job's provenance with the sample's own grid as `pooling` (a processor may pick each
    sample's frames and resolution)."""
    return {**provenance, "pooling": grid_text(layout.grid)}


def provenance(
    model_id: str,
    dtype: str,
    stamp: Stamp,
    pooling: tuple[int, int, int],
    revision: str | None = None,
    settings: dict | None = None,
) -> dict:
    import torch
    import transformers

    import vlmflow

    return dict(
        model_id=str(model_id),
        model_revision=revision or "",
        dtype=dtype,
        attention_backend=stamp.attention_backend,
        engine=stamp.engine,
        n_frames=stamp.n_frames,
        frame_sampling=stamp.frame_sampling,
        short_clips=stamp.short_clips,
        pooling=grid_text(pooling),
        seed=stamp.seed,
        adapter_settings=json.dumps(settings or {}, sort_keys=True),  # the family's switches
        torch_version=torch.__version__,
        transformers_version=transformers.__version__,
        vlmflow_version=vlmflow.__version__,
    )

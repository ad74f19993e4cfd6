"""Provenance columns stamped on every result row."""

from __future__ import annotations

import json


def provenance(
    model_id: str,
    dtype: str,
    backend: str,
    engine: str,
    n_frames: int,
    seed: int,
    pooling: tuple[int, int, int],
    revision: str | None = None,
    settings: dict | None = None,
    frame_sampling: str = "segments",
) -> dict:
    import torch
    import transformers

    import vlmflow

    return dict(
        model_id=str(model_id),
        model_revision=revision or "",
        dtype=dtype,
        attention_backend=backend,
        engine=engine,
        n_frames=n_frames,
        frame_sampling=frame_sampling,
        pooling="-".join(map(str, pooling)),
        seed=seed,
        adapter_settings=json.dumps(settings or {}, sort_keys=True),  # the family's switches
        torch_version=torch.__version__,
        transformers_version=transformers.__version__,
        vlmflow_version=vlmflow.__version__,
    )

"""The paper's knockout method, kept as the oracle every fast path must equal.

Per condition: a full forward of the whole model (vision tower included) under the model's own
eager attention, where each layer of the window gets a dense additive 4-D mask [1, H, N, N]
(dtype min where blocked or non-causal, 0 elsewhere, all heads) that *replaces* the model's causal
mask. Built the paper's way, from a lower-triangular 0/1 matrix with the blocked blocks zeroed,
from the layout's index lists (independently of the engine's compiled masks). Slow and
memory-hungry on purpose: it is the definition, not the tool. Uses only the adapter contract.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from vlmflow.knockout.spec import Condition
from vlmflow.layout import TokenLayout
from vlmflow.models.base import Adapter
from vlmflow.open_ended import OpenAnswer
from vlmflow.question import Question


def _zero(keep: torch.Tensor, rows: np.ndarray, cols: np.ndarray) -> None:
    if len(rows) and len(cols):
        keep[np.ix_(rows, cols)] = 0


def dense_mask(layout: TokenLayout, cond: Condition, n_heads: int, dtype: torch.dtype) -> torch.Tensor:
    """[1, n_heads, N, N] additive mask: 0 = attend, finfo.min = blocked or in the future."""
    N = layout.n_tokens
    keep = torch.ones(N, N).tril()
    T = layout.grid[0]
    for e in cond.knockout.edges:
        if e.source == "cross_frame":
            for t in range(1, T):
                earlier = np.concatenate([layout.knockout_indices(f"frame[{s}]") for s in range(t)])
                _zero(keep, layout.knockout_indices(f"frame[{t}]"), earlier)
        elif e.source == "video_video":
            _zero(keep, layout.knockout_indices("video"), layout.knockout_indices("video"))
        elif e.source == "question_question":
            _zero(keep, layout.indices("question"), layout.indices("question"))
        else:
            _zero(keep, layout.knockout_indices(e.target), layout.knockout_indices(e.source))
    heads = range(n_heads) if cond.knockout.heads is None else cond.knockout.heads
    full = torch.ones(1, n_heads, N, N).tril()
    for h in heads:
        full[0, h] = keep
    return (1 - full).to(dtype) * torch.finfo(dtype).min


def additive(keep: torch.Tensor, n_heads: int, dtype: torch.dtype) -> torch.Tensor:
    """[N, N] (all heads) or [H, N, N] (per head) 0/1 keep matrix -> the paper's [1, n_heads, N, N]
    additive mask (finfo.min where 0)."""
    return (1 - keep.tril()).to(dtype).expand(1, n_heads, -1, -1) * torch.finfo(dtype).min


@torch.no_grad()
def reference_probs(
    adapter: Adapter, question: Question, frames, cond: Condition, predicted_option: int | None = None
) -> torch.Tensor:
    """Next-token probabilities [V] (fp32) at the last position under `cond`, the paper's way
    (`predicted_option`: the option the model chose, for knockouts of the failure cases)."""
    if cond.knockout.mode != "pre_softmax":
        raise ValueError("the reference method defines only the paper's pre-softmax knockout")
    sample = adapter.prepare(question, adapter.video_features(adapter.pixel_values(frames)))  # vision rerun
    sample.layout = replace(sample.layout, predicted_option=predicted_option)
    mask = dense_mask(sample.layout, cond, adapter.n_heads, sample.inputs_embeds.dtype).to(adapter.device)
    return forward_with_masks(adapter, sample, {l: mask for l in cond.window.layers})


@torch.no_grad()
def reference_generate(
    adapter: Adapter,
    question: Question,
    frames,
    cond: Condition | None,
    answer: OpenAnswer,
    max_new_tokens: int,
    stop: set[int],
) -> list[int]:
    """Greedy open-ended generation the paper's way: every step a full forward of the whole sequence;
    the layers of `cond`'s window get the dense mask, its rows for generated tokens copied from the
    last prompt row (generated keys stay visible, causally)."""
    if cond is not None and (cond.knockout.heads is not None or cond.knockout.mode != "pre_softmax"):
        raise ValueError("reference generation takes all-head pre-softmax knockouts only")
    sample = adapter.prepare(question, adapter.video_features(adapter.pixel_values(frames)), answer)
    N = sample.layout.n_tokens
    dtype = sample.inputs_embeds.dtype
    prompt_mask = None if cond is None else dense_mask(sample.layout, cond, 1, torch.float32)[0, 0] == 0
    out: list[int] = []
    while True:
        n = sample.inputs_embeds.shape[1]
        masks = {}
        if prompt_mask is not None:
            keep = torch.ones(n, n).tril()
            keep[:N, :N] = prompt_mask.float()
            keep[N:, :N] = prompt_mask[-1].float()
            masks = {l: additive(keep, adapter.n_heads, dtype).to(adapter.device) for l in cond.window.layers}
        token = int(forward_with_masks(adapter, sample, masks).argmax())
        if token in stop or len(out) == max_new_tokens:
            return out
        out.append(token)
        new = adapter.decoder().embed_tokens(torch.tensor([[token]], device=adapter.device)).to(dtype)
        sample.inputs_embeds = torch.cat([sample.inputs_embeds, new], dim=1)
        sample.position_ids = torch.cat([sample.position_ids, adapter.next_position(sample.position_ids)], -1)


@torch.no_grad()
def reference_probs_layerwise(adapter: Adapter, question: Question, frames, blocked) -> torch.Tensor:
    """The paper's effective-pathway forward: layer l gets the dense mask of `blocked(l)` ([N, N]
    bool for all heads, or [H, N, N] per head; True = blocked; None = causal only), all layers' masks
    built up front as the authors do."""
    sample = adapter.prepare(question, adapter.video_features(adapter.pixel_values(frames)))
    dtype = sample.inputs_embeds.dtype
    masks = {}
    for l in range(adapter.n_layers):
        b = blocked(l)
        if b is not None:
            masks[l] = additive((~b).float(), adapter.n_heads, dtype).to(adapter.device)
    return forward_with_masks(adapter, sample, masks)


def forward_with_masks(adapter: Adapter, sample, masks: dict) -> torch.Tensor:
    """The model's own eager forward with layer l's attention mask replaced by masks[l]."""

    def hook(layer):
        def replace_mask(module, args, kwargs):
            kwargs["attention_mask"] = masks[layer]
            return args, kwargs

        return replace_mask

    layers = adapter.decoder().layers
    hooks = [layers[l].register_forward_pre_hook(hook(l), with_kwargs=True) for l in masks]
    try:
        return adapter.plain_forward(sample, "eager")
    finally:
        for hk in hooks:
            hk.remove()

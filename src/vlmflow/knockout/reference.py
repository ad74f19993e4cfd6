"""The paper's knockout method, kept as the oracle every fast path must equal (spec C.0).

Per condition: a full forward of the whole model (vision tower included) under eager attention,
where each layer of the window gets a dense additive 4-D mask [1, H, N, N] (dtype min where
blocked or non-causal, 0 elsewhere, all heads) that *replaces* the model's causal mask. Built the
paper's way, from a lower-triangular 0/1 matrix with the blocked blocks zeroed. Slow and
memory-hungry on purpose: it is the definition, not the tool.
"""

from __future__ import annotations

import torch

from vlmflow.knockout.spec import Condition
from vlmflow.layout import TokenLayout
from vlmflow.models.base import Question


def dense_mask(layout: TokenLayout, cond: Condition, n_heads: int, dtype: torch.dtype) -> torch.Tensor:
    """[1, n_heads, N, N] additive mask: 0 = attend, finfo.min = blocked or in the future."""
    N = layout.n_tokens
    keep = torch.ones(N, N).tril()
    for e in cond.knockout.edges:
        if e.source == "cross_frame":
            for t in range(1, layout.grid[0]):
                a, b = layout.frame(t)
                keep[a:b, layout.video[0] : a] = 0
        elif e.source == "video_video":
            a, b = layout.video
            keep[a:b, a:b] = 0
        elif e.source == "question_question":
            a, b = layout.question
            keep[a:b, a:b] = 0
        else:
            for r in layout.indices(e.target).tolist():
                for c in layout.indices(e.source).tolist():
                    keep[r, c] = 0
    heads = range(n_heads) if cond.knockout.heads is None else cond.knockout.heads
    full = torch.ones(1, n_heads, N, N).tril()
    for h in heads:
        full[0, h] = keep
    return (1 - full).to(dtype) * torch.finfo(dtype).min


@torch.no_grad()
def reference_probs(adapter, question: Question, frames, cond: Condition) -> torch.Tensor:
    """Next-token probabilities [V] (fp32) at the last position under `cond`, the paper's way."""
    if cond.knockout.mode != "pre_softmax":
        raise ValueError("the reference method defines only the paper's pre-softmax knockout")
    video = adapter.video_features(adapter.pixel_values(frames))  # vision tower rerun every time
    sample = adapter.prepare(question, video)
    lm = adapter.model.model.language_model
    n_heads = lm.config.num_attention_heads
    mask = dense_mask(sample.layout, cond, n_heads, sample.inputs_embeds.dtype).to(adapter.device)

    def replace_mask(module, args, kwargs):
        kwargs["attention_mask"] = mask
        return args, kwargs

    saved = lm.config._attn_implementation
    lm.config._attn_implementation = "eager"
    hooks = [lm.layers[l].self_attn.register_forward_pre_hook(replace_mask, with_kwargs=True)
             for l in cond.window.layers]
    try:
        h = lm(inputs_embeds=sample.inputs_embeds, position_ids=sample.position_ids).last_hidden_state
    finally:
        for hk in hooks:
            hk.remove()
        lm.config._attn_implementation = saved
    return torch.softmax(adapter.model.lm_head(h[:, -1]).float(), dim=-1)[0]

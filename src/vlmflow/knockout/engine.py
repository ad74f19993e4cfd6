"""The knockout engine: many knockout conditions on one sample, reusing all a knockout cannot change.

Exact reuse (every result equals the paper's full dense-mask forward, see `reference.py`):
1. video tokens are computed once per sample (the caller passes a PreparedSample);
2. a condition whose window starts at layer a resumes from the clean hidden states entering layer a;
3. rows above the first query the knockout touches (q0) are never recomputed: their clean
   keys/values, recorded in the clean pass, are prepended in attention (->Last knockouts recompute
   one row);
4. conditions with the same q0 share a batch and join it at their own start layer;
5. only the last position goes through the final norm and the lm_head.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vlmflow.knockout import attention
from vlmflow.knockout.masks import blocked_pairs, first_affected_row
from vlmflow.knockout.spec import Condition, Edge, Knockout, Window
from vlmflow.models.base import PreparedSample


@dataclass
class CleanRun:
    hidden_in: list[torch.Tensor]  # per layer l: the input of layer l, [N, d]
    kv: list[tuple[torch.Tensor, torch.Tensor]]  # per layer: clean key, value [1, Hkv, N, dh]
    probs: torch.Tensor  # [V] next-token probabilities at the last position (fp32)


class _Plan:
    """Per-forward state the attention function reads (see attention.Plan)."""

    def __init__(self, backend: str, mode: str = "pre_softmax", q_offset: int = 0):
        self.backend, self.mode, self.q_offset = backend, mode, q_offset
        self.record: list | None = None  # clean pass: collect K/V here
        self.prefix: list | None = None  # knockout pass: clean K/V of rows < q_offset per layer
        self.masks: dict[int, attention.BlockedRows] = {}

    def kv(self, layer, key, value):
        if self.record is not None:
            self.record[layer] = (key, value)
        if self.prefix is not None and self.q_offset > 0:
            pk, pv = self.prefix[layer]
            b = key.shape[0]
            key = torch.cat([pk[..., : self.q_offset, :].expand(b, -1, -1, -1), key], dim=2)
            value = torch.cat([pv[..., : self.q_offset, :].expand(b, -1, -1, -1), value], dim=2)
        return key, value

    def blocked(self, layer):
        return self.masks.get(layer)


class KnockoutEngine:
    def __init__(self, adapter, backend: str = "sdpa", batch_size: int = 16):
        attention.register()
        self.backend = attention.check_backend(backend)
        self.adapter = adapter
        self.parts = adapter.decoder()
        self.batch_size = batch_size
        self.peak_mask_bytes = 0  # largest mask memory one batch held (bool masks)
        lm = adapter.model.model.language_model
        lm.config._attn_implementation = attention.NAME  # every decoder layer reads this at call time

    # --- layer stepping ----------------------------------------------------------------------
    def _rope(self, sample: PreparedSample, h: torch.Tensor):
        return self.parts.rotary_emb(h, sample.position_ids)  # (cos, sin), each [1, N, dh]

    def _layer(self, l, h, rope, pos, plan):
        out = self.parts.layers[l](h, attention_mask=None, position_ids=pos, position_embeddings=rope,
                                   knockout=plan)
        return out[0] if isinstance(out, tuple) else out

    def _head(self, h_last: torch.Tensor) -> torch.Tensor:
        """[b, d] last-position hidden -> [b, V] fp32 probabilities."""
        return torch.softmax(self.parts.lm_head(self.parts.norm(h_last)).float(), dim=-1)

    @torch.no_grad()
    def clean(self, sample: PreparedSample) -> CleanRun:
        n_layers = len(self.parts.layers)
        plan = _Plan(self.backend)
        plan.record = [None] * n_layers
        h = sample.inputs_embeds
        rope = self._rope(sample, h)
        hidden_in = []
        for l in range(n_layers):
            hidden_in.append(h[0])
            h = self._layer(l, h, rope, sample.position_ids, plan)
        return CleanRun(hidden_in, plan.record, self._head(h[:, -1])[0])

    # --- knockouts ---------------------------------------------------------------------------
    @torch.no_grad()
    def run(self, sample: PreparedSample, conditions: list[Condition], clean: CleanRun | None = None) -> torch.Tensor:
        """Probabilities at the last position under each condition -> [len(conditions), V] fp32."""
        clean = clean or self.clean(sample)
        out = [None] * len(conditions)
        groups: dict[tuple, list[tuple[int, torch.Tensor]]] = {}
        for i, c in enumerate(conditions):
            blocked = blocked_pairs(sample.layout, c.knockout).to(sample.inputs_embeds.device)
            if not c.window.layers or not blocked.any():
                out[i] = clean.probs
                continue
            key = (first_affected_row(blocked), c.knockout.mode, c.knockout.heads)
            groups.setdefault(key, []).append((i, blocked))
        for (q0, mode, heads), items in groups.items():
            items.sort(key=lambda it: min(conditions[it[0]].window.layers))
            for s in range(0, len(items), self.batch_size):
                chunk = items[s : s + self.batch_size]
                probs = self._run_chunk(sample, clean, [(conditions[i], b) for i, b in chunk], q0, mode, heads)
                for (i, _), p in zip(chunk, probs):
                    out[i] = p
        return torch.stack(out)

    def _run_chunk(self, sample, clean, chunk, q0, mode, heads):
        """Conditions sharing q0, sorted by first layer; each joins the batch at its first layer."""
        n_layers = len(self.parts.layers)
        plan = _Plan(self.backend, mode, q0)
        plan.prefix = clean.kv
        rope_full = self._rope(sample, sample.inputs_embeds)
        rope = tuple(r[:, q0:] for r in rope_full)
        pos = sample.position_ids[:, q0:]
        n_heads = self.parts.layers[0].self_attn.config.num_attention_heads
        sel = None
        if heads is not None:
            sel = torch.zeros(n_heads, dtype=torch.bool, device=sample.inputs_embeds.device)
            sel[list(heads)] = True
        starts = [min(c.window.layers) for c, _ in chunk]
        windows = [set(c.window.layers) for c, _ in chunk]
        # one copy of each distinct blocked-rows matrix [N - q0, N], index 0 = nothing blocked
        distinct: dict[Knockout, int] = {}
        for c, _ in chunk:
            distinct.setdefault(c.knockout, len(distinct) + 1)
        unique = torch.zeros(len(distinct) + 1, *chunk[0][1][q0:].shape, dtype=torch.bool, device=chunk[0][1].device)
        for c, b in chunk:
            unique[distinct[c.knockout]] = b[q0:]
        which = [distinct[c.knockout] for c, _ in chunk]
        h = None
        for l in range(starts[0], n_layers):
            joining = [k for k, s in enumerate(starts) if s == l]
            if joining:
                new = clean.hidden_in[l][q0:].unsqueeze(0).expand(len(joining), -1, -1)
                h = new if h is None else torch.cat([h, new])
            b = h.shape[0]
            idx = torch.tensor([which[k] if l in windows[k] else 0 for k in range(b)], device=unique.device)
            plan.masks = {l: attention.BlockedRows(unique, idx, sel)} if bool(idx.any()) else {}
            # held: the distinct matrices and one [H|1, q, N] allowed-mask at a time in attention
            allowed_bytes = unique[0].numel() * (n_heads if sel is not None else 1)
            self.peak_mask_bytes = max(self.peak_mask_bytes, unique.numel() + allowed_bytes)
            h = self._layer(l, h, rope, pos, plan)
        return self._head(h[:, -1])


def canary(engine: KnockoutEngine, sample: PreparedSample, tol: float = 1e-6) -> None:
    """Stop the run unless a no-op knockout reproduces the plain model and a total cut changes it."""
    n_layers = len(engine.parts.layers)
    every = Window(0, tuple(range(n_layers)), n_layers, "explicit")
    clean = engine.clean(sample)
    plain = plain_forward(engine.adapter, sample)
    if (clean.probs - plain).abs().max() > tol:
        raise RuntimeError(f"canary: the engine's clean pass differs from the model's own forward "
                           f"by {(clean.probs - plain).abs().max():.2e} (> {tol:g})")
    noop = Knockout("no-op", ())
    cut = Knockout("all -> last", (Edge("all", "last"),))
    probs = engine.run(sample, [Condition(noop, every), Condition(cut, every)], clean)
    if (probs[0] - plain).abs().max() > tol:
        raise RuntimeError("canary: a knockout that blocks nothing changed the model's output")
    if (probs[1] - plain).abs().max() <= tol:
        raise RuntimeError("canary: blocking every edge into the last token changed nothing; "
                           "the attention bias is not applied")


@torch.no_grad()
def plain_forward(adapter, sample: PreparedSample) -> torch.Tensor:
    """The unmodified model's own forward (its own attention implementation) -> [V] fp32."""
    lm = adapter.model.model.language_model
    saved = lm.config._attn_implementation
    lm.config._attn_implementation = "sdpa"
    try:
        h = lm(inputs_embeds=sample.inputs_embeds, position_ids=sample.position_ids).last_hidden_state
    finally:
        lm.config._attn_implementation = saved
    return torch.softmax(adapter.model.lm_head(h[:, -1]).float(), dim=-1)[0]

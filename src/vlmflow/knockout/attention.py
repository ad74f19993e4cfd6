"""The one attention function every knockout goes through, registered in transformers'
AttentionInterface. It always builds causality itself (it never trusts a missing mask to mean
"causal"), looks up the blocked pairs of the calling layer (`module.layer_idx`) in the plan passed
as the `knockout` keyword, and attends to clean cached keys/values for the rows it does not recompute.
What it does not implement (sliding windows, logit soft-capping, attention sinks, dropout, a
non-causal model) it refuses with a message instead of ignoring.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F

from vlmflow.knockout.masks import Blocked, unpack

NAME = "vlmflow_knockout"
BACKENDS = ("sdpa", "eager", "flex")
REFUSED = ("flash_attention_2", "flash_attention_3", "flash_attention", "paged_attention")
# keywords transformers' attention modules pass that change nothing for an unpadded causal forward
HARMLESS = {"position_ids", "cache_position", "output_attentions", "use_cache", "is_causal"}
# up to this many recomputed rows, attend to the shared clean prefix in place (explicit math, scores
# [b, H, q, N]) instead of copying its keys/values for every batch element
SPLIT_MAX_ROWS = 16
# up to this many recomputed rows, a batch mixing knockouts runs as one SDPA call with a mask per element
MIXED_MAX_ROWS = 128
# the working memory one attention call may build for its masks and scores: query rows are processed
# in chunks that fit (a job sets it from its model's `attention_mb`)
_budget = 2048 * 2**20
# FlexAttention compiled (block-sparse kernels) or run as written: None = compiled on CUDA only
_flex_compiled: bool | None = None


def set_budget_bytes(n: int) -> None:
    """The memory cap of every later attention call in this process, in bytes (>= 1)."""
    global _budget
    if n < 1:
        raise ValueError(f"the attention memory budget must be >= 1 byte, got {n}")
    _budget = int(n)


def budget_bytes() -> int:
    return _budget


def set_flex_compiled(flag: bool | None) -> None:
    """Compile the flex backend's block mask and kernel (True), run them as written (False), or
    compile on CUDA only (None, the default: on CPU, compiling costs more than it saves)."""
    global _flex_compiled
    _flex_compiled = flag


@dataclass
class BlockedRows:
    """The blocked (query, key) pairs of a batch in one layer: one packed matrix per distinct knockout,
    each holding exactly the rows and keys of the call (rows from the plan's `q_offset`)."""

    distinct: list[Blocked | None]  # entry 0 is None (no block)
    which: torch.Tensor  # [b] long: the distinct matrix of each batch element
    heads: torch.Tensor | None = None  # [H] bool: the heads a knockout applies to (None = all)

    def check(self, q_offset: int, q_len: int) -> None:
        for m in self.distinct[1:]:
            if (m.q0, m.n_rows, m.n_keys) != (q_offset, q_len, q_offset + q_len):
                raise ValueError(
                    f"a blocked matrix holds rows {m.q0}..{m.q0 + m.n_rows - 1} over {m.n_keys} keys; "
                    f"this call computes rows {q_offset}..{q_offset + q_len - 1}"
                )


class Plan(Protocol):
    """What the attention function asks of the engine, per layer."""

    backend: str
    mode: str  # "pre_softmax" | "post_softmax"
    q_offset: int  # absolute position of the first query row passed in

    def record(self, layer: int, key: torch.Tensor, value: torch.Tensor) -> None: ...

    def prefix(self, layer: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Clean key, value [1, Hkv, q_offset, d] of the rows before the first one passed in."""

    def blocked(self, layer: int) -> BlockedRows | None: ...

    def note_mask_bytes(self, n: int, scratch: int = 0) -> None:
        """The masks one call builds (n bytes), and the float scores and masks beside them (scratch)."""

    def probe_rows(self, layer: int) -> torch.Tensor | None:
        """Query rows whose attention probabilities to keep in this layer (probes), or None."""

    def keep_probs(self, layer: int, probs: torch.Tensor) -> None: ...


def _in_heads(rows: torch.Tensor, heads: torch.Tensor | None) -> torch.Tensor:
    """[r, k] bool -> [1|H, r, k]: the rows in the knockout's heads ([H] bool, None = all)."""
    m = rows.unsqueeze(0)
    return m if heads is None else m & heads.view(-1, 1, 1)


def check_backend(name: str) -> str:
    if name in REFUSED or name.startswith("flash"):
        raise ValueError(
            f"attention backend {name!r} ignores additive masks, so knockouts would silently do nothing; "
            f"use one of {BACKENDS}"
        )
    if name not in BACKENDS:
        raise ValueError(f"unknown attention backend {name!r}; use one of {BACKENDS}")
    return name


def _refuse_unsupported(module, dropout: float, kwargs: dict, k_len: int) -> None:
    where = f"layer {getattr(module, 'layer_idx', '?')} ({type(module).__name__})"
    if not getattr(module, "is_causal", True):
        raise NotImplementedError(
            f"{where} is not causal; vlmflow's knockout attention implements causal decoders only"
        )
    if dropout and dropout > 0:
        raise NotImplementedError(
            f"{where}: attention dropout {dropout} (train mode); knockouts are measured "
            "in eval mode: call model.eval()"
        )
    window = kwargs.pop("sliding_window", None)
    if window is not None and window < k_len:
        raise NotImplementedError(
            f"{where}: sliding-window attention ({window} < {k_len} keys) is not "
            "implemented by vlmflow's knockout attention"
        )
    for name in ("softcap", "s_aux"):
        if kwargs.pop(name, None) is not None:
            raise NotImplementedError(
                f"{where}: {name!r} (logit soft-capping / attention sinks) is not "
                "implemented by vlmflow's knockout attention"
            )
    unknown = sorted(k for k, v in kwargs.items() if k not in HARMLESS and v is not None)
    if unknown:
        raise NotImplementedError(
            f"{where}: attention arguments {unknown} are not implemented by vlmflow's knockout attention"
        )


def _repeat_kv(x: torch.Tensor, n: int) -> torch.Tensor:
    return x if n == 1 else x.repeat_interleave(n, dim=1)


def knockout_attention(
    module, query, key, value, attention_mask, scaling, dropout=0.0, knockout=None, **kwargs
):
    """query [b, H, q, d]; key, value [b, Hkv, q, d] (RoPE applied) -> ([b, q, H, d], None)."""
    plan: Plan | None = knockout
    q_offset = 0 if plan is None else plan.q_offset
    _refuse_unsupported(module, dropout, kwargs, q_offset + key.shape[2])
    if attention_mask is not None and attention_mask.dtype == torch.bool and not bool(attention_mask.all()):
        raise ValueError("vlmflow attention builds its own causal mask; padded batches are not supported")
    layer = module.layer_idx
    blocked, prefix = None, None
    backend, mode = "sdpa", "pre_softmax"
    if plan is not None:
        plan.record(layer, key, value)
        prefix = plan.prefix(layer)
        blocked = plan.blocked(layer)
        backend, mode = plan.backend, plan.mode
    n_rep = query.shape[1] // key.shape[1]
    b, q_len = query.shape[0], query.shape[2]
    if prefix is not None and (q_len > SPLIT_MAX_ROWS or mode != "pre_softmax" or backend == "flex"):
        key = torch.cat([prefix[0].expand(b, -1, -1, -1), key], dim=2)
        value = torch.cat([prefix[1].expand(b, -1, -1, -1), value], dim=2)
        prefix = None
    key, value = _repeat_kv(key, n_rep), _repeat_kv(value, n_rep)
    if prefix is not None:
        prefix = _repeat_kv(prefix[0], n_rep), _repeat_kv(prefix[1], n_rep)  # [1, H, q_offset, d]
    probe = None if plan is None else plan.probe_rows(layer)
    if probe is not None and (prefix is not None or b != 1):
        raise ValueError("attention probabilities are kept for a full forward of one sample only")
    plain = blocked is None and prefix is None and mode == "pre_softmax" and q_offset == 0
    if plain and backend == "sdpa" and probe is None:
        out = F.scaled_dot_product_attention(
            query, key, value, is_causal=True, scale=scaling
        )  # a plain forward
        return out.transpose(1, 2).contiguous(), None
    k_len = q_offset + q_len
    if blocked is not None:
        blocked.check(q_offset, q_len)
    groups = [0] if blocked is None else blocked.which.unique().tolist()
    if len(groups) == 1:
        source = (blocked, groups[0]) if groups[0] else None
        out = _attend(query, key, value, prefix, q_offset, source, scaling, backend, mode, plan)
        if probe is not None:
            plan.keep_probs(layer, _probabilities(query, key, q_offset, source, scaling, probe))
        return out.transpose(1, 2).contiguous(), None
    # causal, distinct, allowed bools and SDPA's float mask
    mixed_bytes = b * q_len * k_len * (3 + query.element_size())
    if (
        q_len <= MIXED_MAX_ROWS
        and prefix is None
        and mode == "pre_softmax"
        and backend == "sdpa"
        and blocked.heads is None
        and mixed_bytes <= budget_bytes()
    ):
        # few rows: one SDPA call with each element's mask ([b, q, N] bools) beats copying the
        # keys/values of every group out of the batch
        causal = _causal(q_offset, k_len, k_len, query.device)  # [q, N]
        rows = [m.rows().to(query.device) for m in blocked.distinct[1:]]
        distinct = torch.stack([torch.zeros_like(causal), *rows])  # [m, q, N]
        allowed = causal & ~distinct[blocked.which.to(query.device)]  # [b, q, N]
        if bool(allowed.any(-1).all()):
            # SDPA turns the boolean mask into one of the query's dtype
            plan.note_mask_bytes(causal.numel() + distinct.numel() + allowed.numel(), mixed_bytes)
            out = F.scaled_dot_product_attention(query, key, value, attn_mask=allowed[:, None], scale=scaling)
            return out.transpose(1, 2).contiguous(), None
    out = torch.empty_like(query)
    for g in groups:  # one pass per distinct mask: no per-element mask copies
        rows = (blocked.which == g).nonzero().squeeze(1)
        source = (blocked, g) if g else None
        out[rows] = _attend(
            query[rows], key[rows], value[rows], prefix, q_offset, source, scaling, backend, mode, plan
        )
    return out.transpose(1, 2).contiguous(), None


def _causal(q0: int, q1: int, k_len: int, device) -> torch.Tensor:
    """[q1 - q0, k_len] bool: key <= query for query rows q0..q1-1."""
    return torch.arange(k_len, device=device)[None, :] <= torch.arange(q0, q1, device=device)[:, None]


def _attend(query, key, value, prefix, q_offset, source, scaling, backend, mode, plan):
    """query [b, H, q, d], key/value [b, H, k, d] (k = q, or all N keys when `prefix` is None),
    prefix: clean key/value [1, H, N - q, d] of the rows before, or None; q_offset: the first row's
    position; source: (BlockedRows, distinct index) of the pairs to block, or None. Query rows attend
    independently: they run in chunks whose causal mask, unpacked blocked rows and scores fit the
    memory budget (`set_budget_bytes`), all at once when they fit."""
    b, n_heads, q_len, _ = query.shape
    k_len = q_offset + q_len
    explicit = prefix is not None or mode == "post_softmax" or backend == "eager"
    mask_heads = 1 if source is None or source[0].heads is None else n_heads
    per_row = k_len * (
        1  # the row's causal entries
        + (0 if source is None else 1 + mask_heads)  # its unpacked blocked and allowed entries
        + (3 * 4 * b * n_heads if explicit else mask_heads * query.element_size())  # scores | float mask
    )
    rows = min(q_len, max(1, budget_bytes() // per_row))
    if rows == q_len:
        bits = None if source is None else source[0].distinct[source[1]].bits
        return _attend_rows(query, key, value, prefix, q_offset, bits, source, scaling, backend, mode, plan)
    out = torch.empty_like(query)
    for r in range(0, q_len, rows):
        sl = slice(r, r + rows)
        bits = None if source is None else source[0].distinct[source[1]].bits[sl]
        out[:, :, sl] = _attend_rows(
            query[:, :, sl], key, value, prefix, q_offset + r, bits, source, scaling, backend, mode, plan
        )
    return out


def _attend_rows(query, key, value, prefix, q_first, bits, source, scaling, backend, mode, plan):
    """`_attend` for rows that fit the budget at once: rows q_first..q_first+q-1, blocking `bits`
    [q, ceil(N/8)] (packed, None = nothing) in the heads of `source`."""
    n_keys = key.shape[2] + (0 if prefix is None else prefix[0].shape[2])
    causal = _causal(q_first, q_first + query.shape[2], n_keys, query.device)  # [q, N]
    if bits is not None:  # on the layer's device (a model split by device_map runs layers elsewhere)
        bits = bits.to(query.device)
    heads = None if source is None or source[0].heads is None else source[0].heads.to(query.device)
    mask = None if bits is None else _in_heads(unpack(bits, n_keys), heads)  # [1|H, q, N]
    allowed = causal if mask is None else causal & ~mask  # [q, N] or [1|H, q, N]
    if plan is not None:
        b, n_heads, q_len, _ = query.shape
        explicit = prefix is not None or mode == "post_softmax" or backend == "eager"
        # explicit math: scores, their masked copy, fp32 probabilities; SDPA: its float mask
        scratch = 3 * 4 * b * n_heads * q_len * n_keys if explicit else 0
        if not explicit and backend == "sdpa":
            scratch = allowed.numel() * query.element_size()
        held = 0 if mask is None else mask.numel() + allowed.numel()
        plan.note_mask_bytes(causal.numel() + held, scratch)
    if prefix is not None:  # explicit math against the shared prefix: no per-element key/value copy
        pk, pv = (
            prefix[0][0],
            prefix[1][0],
        )  # [H, n0, d]: one GEMM per head over all b*q rows, no broadcast copy
        scores = (
            torch.cat(
                [torch.einsum("bhqd,hkd->bhqk", query, pk), torch.matmul(query, key.transpose(2, 3))], dim=-1
            )
            * scaling
        )  # [b, H, q, N]
        probs = torch.softmax(
            scores.masked_fill(~allowed, torch.finfo(scores.dtype).min), dim=-1, dtype=torch.float32
        ).to(query.dtype)
        n0 = pk.shape[1]
        return torch.einsum("bhqk,hkd->bhqd", probs[..., :n0], pv) + torch.matmul(probs[..., n0:], value)
    if mode == "post_softmax":  # only explicit math can zero probabilities after the softmax
        scores = torch.matmul(query, key.transpose(2, 3)) * scaling  # [b, H, q, k]
        probs = torch.softmax(
            scores.masked_fill(~causal, torch.finfo(scores.dtype).min), dim=-1, dtype=torch.float32
        ).to(query.dtype)
        if mask is not None:
            probs = probs.masked_fill(mask, 0.0)  # not renormalised
        return torch.matmul(probs, value)
    full_rows = bool(allowed.any(-1).all())
    if backend == "flex" and full_rows:  # flex gives a fully blocked row zeros, the paper uniform weights
        return _flex(query, key, value, q_first, bits, heads, scaling)
    if backend == "eager":
        scores = torch.matmul(query, key.transpose(2, 3)) * scaling  # [b, H, q, k]
        scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
        return torch.matmul(torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype), value)
    # SDPA's fused CPU kernel takes a 2-D or 4-D mask; a 3-D one falls back to its math path (~6x slower)
    allowed = allowed.view(1, *allowed.shape) if allowed.dim() == 3 else allowed  # [q, N] | [1, 1|H, q, N]
    if not full_rows:  # the paper's additive min gives a fully blocked row uniform weights
        bias = torch.zeros(allowed.shape, dtype=query.dtype, device=query.device)
        allowed = bias.masked_fill_(~allowed, torch.finfo(query.dtype).min)
    return F.scaled_dot_product_attention(query, key, value, attn_mask=allowed, scale=scaling)


def _probabilities(query, key, q_offset, source, scaling, rows):
    """The paper's attention probabilities of query `rows` (counted from q_offset) of one sample ->
    [H, r, k] fp32: eager scores, blocked and future keys at dtype min, softmax."""
    dev = key.device
    rows = rows.to(dev)
    allowed = torch.arange(key.shape[2], device=dev)[None, :] <= (q_offset + rows)[:, None]  # [r, k]
    if source is not None:
        blocked, g = source
        bits = blocked.distinct[g].bits
        picked = blocked.distinct[g].select(rows.to(bits.device)).to(dev)  # [r, k]
        allowed = allowed & ~_in_heads(picked, None if blocked.heads is None else blocked.heads.to(dev))
    scores = torch.matmul(query[:, :, rows], key.transpose(2, 3)) * scaling  # [1, H, r, k]
    scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
    return torch.softmax(scores, dim=-1, dtype=torch.float32)[0]


def _flex(query, key, value, q_first, bits, heads, scaling):
    """FlexAttention with a block mask read from causality (positions) and the packed blocked bits
    [q, ceil(k/8)] of these rows (None: causal only): no dense [q, k] mask is built for it. On CUDA
    the block mask and the kernel are compiled (block-sparse); elsewhere both run as written (see
    `set_flex_compiled`)."""
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    first = torch.tensor(q_first, device=query.device)  # a tensor: compiled once, not per chunk
    if heads is not None and len(heads) <= 64:  # one int's bits (inductor's CPU kernel fails on heads[h])
        bit = torch.arange(len(heads), device=heads.device)
        heads = (heads.long() << bit).sum()

    def in_heads(h):
        return heads[h] if heads.dim() else ((heads >> h) & 1) == 1

    def mask_mod(b, h, q, k):
        ok = k <= q + first
        if bits is None:
            return ok
        hit = ((bits[q, k // 8] >> (k % 8)) & 1) == 1
        return ok & ~(hit if heads is None else hit & in_heads(h))

    n_heads = None if heads is None else query.shape[1]
    make, attend = (create_block_mask, flex_attention)
    if query.is_cuda if _flex_compiled is None else _flex_compiled:
        make, attend = _compiled(create_block_mask), _compiled(flex_attention)
    block = make(mask_mod, None, n_heads, query.shape[2], key.shape[2], device=query.device)
    return attend(query, key, value, block_mask=block, scale=scaling)


_COMPILED: dict = {}


def _compiled(fn):
    """`fn` compiled once per process (torch.compile caches its graphs by shape)."""
    if fn not in _COMPILED:
        _COMPILED[fn] = torch.compile(fn)
    return _COMPILED[fn]


def register() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(NAME, knockout_attention)

"""The knockout engine: many knockout conditions on one sample, reusing all a knockout cannot change.

Exact reuse (every result equals the paper's full dense-mask forward, see `reference.py`):
1. video tokens are computed once per sample (the caller passes a PreparedSample);
2. a condition whose window starts at layer a resumes from the clean hidden states entering layer a;
3. rows above the first query the knockout touches (q0) are never recomputed: their clean
   keys/values, recorded in the clean pass, are prepended in attention (->Last knockouts recompute
   one row);
4. conditions with the same q0 share a batch and join it at their own start layer;
5. each distinct knockout is compiled once per sample, for its rows q0..N-1 only, one bit per pair;
6. only the last position goes through the final norm and the lm_head.

The engine speaks to the model only through the adapter contract (`vlmflow.models.base.Adapter`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import torch

from vlmflow.knockout import attention
from vlmflow.knockout.masks import Blocked, compile_knockout
from vlmflow.knockout.spec import Condition, Edge, Knockout, Window
from vlmflow.models.base import Adapter, PreparedSample, finite


@dataclass
class CleanRun:
    hidden_in: list[torch.Tensor]  # per layer l: the input of layer l, [N, d]
    kv: list[tuple[torch.Tensor, torch.Tensor]]  # per layer: clean key, value [1, Hkv, N, dh]
    probs: torch.Tensor  # [V] next-token probabilities at the last position (fp32)


class _Plan:
    """Per-forward state the attention function reads (see attention.Plan)."""

    def __init__(self, backend: str, mode: str = "pre_softmax", q_offset: int = 0, held_mask_bytes: int = 0):
        self.backend, self.mode, self.q_offset = backend, mode, q_offset
        self.recorded: list | None = None  # clean pass: collect K/V here
        self.clean_kv: list | None = None  # knockout pass: the clean pass's K/V per layer
        self.masks: dict[int, attention.BlockedRows] = {}
        self.held = held_mask_bytes  # compiled masks alive during this forward
        self.peak_mask_bytes = held_mask_bytes
        self.peak_working_bytes = held_mask_bytes
        self.probe: tuple[torch.Tensor, set[int]] | None = None  # (query rows, layers) to keep probs of
        self.probs: dict[int, torch.Tensor] = {}

    def record(self, layer, key, value):
        if self.recorded is not None:
            self.recorded[layer] = (key, value)

    def prefix(self, layer):
        if self.clean_kv is None or self.q_offset == 0:
            return None
        pk, pv = self.clean_kv[layer]
        return pk[..., : self.q_offset, :], pv[..., : self.q_offset, :]

    def blocked(self, layer):
        return self.masks.get(layer)

    def probe_rows(self, layer):
        return self.probe[0] if self.probe is not None and layer in self.probe[1] else None

    def keep_probs(self, layer, probs):
        self.probs[layer] = probs

    def note_mask_bytes(self, n: int, scratch: int = 0) -> None:
        """The attention function reports the masks it builds for one call and the float scores and
        masks beside them (all freed after it)."""
        self.peak_mask_bytes = max(self.peak_mask_bytes, self.held + n)
        self.peak_working_bytes = max(self.peak_working_bytes, self.held + n + scratch)


class KnockoutEngine:
    def __init__(self, adapter: Adapter, backend: str = "sdpa", batch_size: int = 16):
        attention.register()
        self.backend = attention.check_backend(backend)
        if backend not in adapter.ATTENTION_BACKENDS:
            raise ValueError(
                f"attention backend {backend!r} is not run by the {adapter.family} family; it runs "
                f"{list(adapter.ATTENTION_BACKENDS)} (set knockout.attention_backend)"
            )
        self.adapter = adapter
        self.batch_size = batch_size
        self.peak_mask_bytes = 0  # most mask memory held at once in any run so far (compiled + in attention)
        self.peak_working_bytes = 0  # the same with the float scores and masks of attention calls
        self.peak_held_bytes = 0  # the compiled (packed) masks alone, most held at once

    # --- layer stepping ----------------------------------------------------------------------
    def _head(self, h_last: torch.Tensor) -> torch.Tensor:
        """[b, d] last-position hidden -> [b, V] fp32 probabilities."""
        parts = self.adapter.decoder()
        return finite(torch.softmax(parts.lm_head(parts.norm(h_last)).float(), dim=-1))

    def _forward(
        self, sample: PreparedSample, plan: _Plan, n_layers: int | None = None
    ) -> Iterator[torch.Tensor]:
        """A full forward of the first `n_layers` layers (all by default) under `plan`, yielding its
        states one at a time, [N, d]: the embeddings, then each layer's output as transformers' hidden
        states hold it (before the final norm, and before the sample's layer additions, which the
        next layer reads)."""
        a = self.adapter
        h = sample.inputs_embeds
        rope = a.rotary(sample, h)
        with a.attention_implementation(attention.NAME):
            yield h[0]
            for l in range(a.n_layers if n_layers is None else n_layers):
                out = a.layer_forward(l, h, rope, sample.position_ids, knockout=plan)
                yield out[0]
                h = a.after_layer(l, out, sample)

    @torch.no_grad()
    def clean(self, sample: PreparedSample) -> CleanRun:
        plan = _Plan(self.backend)
        plan.recorded = [None] * self.adapter.n_layers
        a = self.adapter
        states = list(self._forward(sample, plan))
        self.peak_mask_bytes = max(self.peak_mask_bytes, plan.peak_mask_bytes)
        self.peak_working_bytes = max(self.peak_working_bytes, plan.peak_working_bytes)
        # what each layer reads: the embeddings, then the layer before's output with its additions
        hidden_in = [states[0]] + [
            a.after_layer(l, states[l + 1][None], sample)[0] for l in range(a.n_layers - 1)
        ]
        # (the head reads the last position, a text token no addition reaches)
        return CleanRun(hidden_in, plan.recorded, self._head(states[-1][-1:])[0])

    @torch.no_grad()
    def states(self, sample: PreparedSample) -> Iterator[torch.Tensor]:
        """The clean forward's states one at a time, nothing kept, each [N, d], on transformers'
        `hidden_states` axis: state 0 the embeddings, state l < L the output of decoder layer l (before
        any layer addition, as transformers records it: Qwen3-VL's DeepStack), state L the last
        layer's output after the final norm (what the lm_head reads). For probes."""
        n = self.adapter.n_layers
        for l, h in enumerate(self._forward(sample, _Plan(self.backend))):
            yield self.adapter.decoder().norm(h) if l == n else h

    # --- knockouts ---------------------------------------------------------------------------
    @torch.no_grad()
    def run(
        self, sample: PreparedSample, conditions: list[Condition], clean: CleanRun | None = None
    ) -> torch.Tensor:
        """Probabilities at the last position under each condition -> [len(conditions), V] fp32."""
        clean = clean or self.clean(sample)
        compiled: dict[Knockout, Blocked] = {}
        for c in conditions:
            if c.knockout not in compiled:
                compiled[c.knockout] = compile_knockout(
                    sample.layout, c.knockout, sample.inputs_embeds.device
                )
        held = sum(b.nbytes for b in compiled.values())
        self.peak_held_bytes = max(self.peak_held_bytes, held)
        out = [None] * len(conditions)
        groups: dict[tuple, list[int]] = {}
        for i, c in enumerate(conditions):
            b = compiled[c.knockout]
            if not c.window.layers or b.empty:
                out[i] = clean.probs
                continue
            groups.setdefault((b.q0, c.knockout.mode, c.knockout.heads), []).append(i)
        for (q0, mode, heads), items in groups.items():
            items.sort(key=lambda i: min(conditions[i].window.layers))
            for s in range(0, len(items), self.batch_size):
                chunk = [conditions[i] for i in items[s : s + self.batch_size]]
                probs = self._run_chunk(sample, clean, chunk, compiled, q0, mode, heads, held)
                for i, p in zip(items[s : s + self.batch_size], probs):
                    out[i] = p
        self.peak_mask_bytes = max(self.peak_mask_bytes, held)
        self.peak_working_bytes = max(self.peak_working_bytes, held)
        return torch.stack(out)

    def _run_chunk(self, sample, clean, chunk, compiled, q0, mode, heads, held):
        """Conditions sharing q0, sorted by first layer; each joins the batch at its first layer."""
        a = self.adapter
        plan = _Plan(self.backend, mode, q0, held)
        plan.clean_kv = clean.kv
        rope = a.rope_rows(a.rotary(sample, sample.inputs_embeds), q0)
        pos = a.position_rows(sample.position_ids, q0)
        sel = None
        if heads is not None:
            sel = torch.zeros(a.n_heads, dtype=torch.bool, device=sample.inputs_embeds.device)
            sel[list(heads)] = True
        starts = [min(c.window.layers) for c in chunk]
        windows = [set(c.window.layers) for c in chunk]
        distinct: list[Knockout | None] = [None]  # index 0 = nothing blocked
        for c in chunk:
            if c.knockout not in distinct:
                distinct.append(c.knockout)
        matrices = [None] + [compiled[k] for k in distinct[1:]]  # packed, no copies
        which = [distinct.index(c.knockout) for c in chunk]
        h = None
        with a.attention_implementation(attention.NAME):
            for l in range(starts[0], a.n_layers):
                joining = [k for k, s in enumerate(starts) if s == l]
                if joining:
                    new = clean.hidden_in[l][q0:].unsqueeze(0).expand(len(joining), -1, -1)
                    h = new if h is None else torch.cat([h, new])
                # elements blocked by the same knockout in the same layers so far hold the same states
                # (windows clipped at the first layer): run the layer once for each such history
                history = [
                    (which[k], tuple(x for x in sorted(windows[k]) if x <= l)) for k in range(h.shape[0])
                ]
                first = {key: k for k, key in reversed(list(enumerate(history)))}
                keep = sorted(first.values())
                idx = torch.tensor([which[k] if l in windows[k] else 0 for k in keep], device=h.device)
                plan.masks = {l: attention.BlockedRows(matrices, idx, sel)} if bool(idx.any()) else {}
                if len(keep) == h.shape[0]:
                    h = a.layer_forward(l, h, rope, pos, knockout=plan)
                else:
                    out = a.layer_forward(l, h[keep], rope, pos, knockout=plan)
                    h = out[[keep.index(first[key]) for key in history]]
                h = a.after_layer(l, h, sample, q0)
        self.peak_mask_bytes = max(self.peak_mask_bytes, plan.peak_mask_bytes)
        self.peak_working_bytes = max(self.peak_working_bytes, plan.peak_working_bytes)
        return self._head(h[:, -1])

    @torch.no_grad()
    def run_layerwise(
        self,
        sample: PreparedSample,
        layer_mask: Callable[[int], Blocked | None],
        clean: CleanRun | None = None,
    ) -> torch.Tensor:
        """One forward in which layer l blocks `layer_mask(l)` (None = nothing), built when layer l
        runs and dropped after it: pathways and random blocking, a different mask in every layer.
        Rows before the video are never recomputed (every such mask leaves them alone) -> [V] fp32."""
        return self.run_layerwise_many(sample, [layer_mask], clean)[0]

    @torch.no_grad()
    def run_layerwise_many(
        self,
        sample: PreparedSample,
        layer_masks: list[Callable[[int], Blocked | None]],
        clean: CleanRun | None = None,
        q0: int | None = None,
        starts: list[int] | None = None,
        heads: tuple[int, ...] | None = None,
        mode: str = "pre_softmax",
    ) -> torch.Tensor:
        """`run_layerwise` for several mask schedules at once, one batch element each (up to
        `batch_size` per forward) -> [len(layer_masks), V] fp32. Rows before `q0` (default: the video
        start) are never recomputed, so no schedule may block them; schedule i blocks nothing below
        layer `starts[i]` (default 0) and joins the batch there, from the clean states; the masks cut
        `heads` only (default: all), in `mode` (the paper's pre-softmax block, or post-softmax zeroing)."""
        a = self.adapter
        sel = None
        if heads is not None:
            sel = torch.zeros(a.n_heads, dtype=torch.bool, device=sample.inputs_embeds.device)
            sel[list(heads)] = True
        clean = clean or self.clean(sample)
        q0 = sample.layout.video_range[0] if q0 is None else q0
        starts = [0] * len(layer_masks) if starts is None else list(starts)
        rope = a.rope_rows(a.rotary(sample, sample.inputs_embeds), q0)
        pos = a.position_rows(sample.position_ids, q0)
        order = sorted(range(len(layer_masks)), key=lambda i: starts[i])
        out: list[torch.Tensor | None] = [None] * len(layer_masks)
        for s in range(0, len(order), self.batch_size):
            chunk = order[s : s + self.batch_size]
            plan = _Plan(self.backend, mode, q0)
            plan.clean_kv = clean.kv
            h, members = None, []
            with a.attention_implementation(attention.NAME):
                for l in range(starts[chunk[0]], a.n_layers):
                    joining = [i for i in chunk if starts[i] == l]
                    if joining:  # [b, N - q0, d]: the clean states entering layer l
                        new = clean.hidden_in[l][q0:].unsqueeze(0).expand(len(joining), -1, -1)
                        h = new if h is None else torch.cat([h, new])
                        members += joining
                    distinct, which = [None], []
                    for i in members:
                        b = layer_masks[i](l)
                        if b is not None and b.q0 < q0:
                            raise ValueError(f"layer {l}: a layerwise mask blocks row {b.q0}, before {q0}")
                        if b is None:
                            which.append(0)
                            continue
                        distinct.append(b if b.q0 == q0 else b.from_row(q0))
                        which.append(len(distinct) - 1)
                    plan.held = sum(m.nbytes for m in distinct[1:])
                    self.peak_held_bytes = max(self.peak_held_bytes, plan.held)
                    idx = torch.tensor(which, device=h.device)
                    plan.masks = {l: attention.BlockedRows(distinct, idx, sel)} if len(distinct) > 1 else {}
                    h = a.after_layer(l, a.layer_forward(l, h, rope, pos, knockout=plan), sample, q0)
            self.peak_mask_bytes = max(self.peak_mask_bytes, plan.peak_mask_bytes)
            self.peak_working_bytes = max(self.peak_working_bytes, plan.peak_working_bytes)
            for i, p in zip(members, self._head(h[:, -1])):
                out[i] = p
        return torch.stack(out)

    @torch.no_grad()
    def attention_probs(
        self,
        sample: PreparedSample,
        rows: list[int],
        layers: list[int],
        knockout: Knockout | None = None,
        knockout_layers: list[int] = (),
    ) -> dict:
        """Attention probabilities of query `rows` in `layers` -> {layer: [H, len(rows), N]} (fp32),
        from one full forward with `knockout` applied in `knockout_layers` (None = the clean model).
        The probabilities are the paper's eager ones; the forward itself runs on the engine's backend."""
        plan = _Plan(self.backend)
        plan.probe = (torch.as_tensor(rows, device=sample.inputs_embeds.device), set(layers))
        if knockout is not None:
            b = compile_knockout(sample.layout, knockout, sample.inputs_embeds.device, q0=0)
            one = torch.ones(1, dtype=torch.long, device=b.bits.device)
            plan.masks = {l: attention.BlockedRows([None, b], one) for l in knockout_layers}
        for _ in self._forward(sample, plan, max(layers) + 1):
            pass
        return plan.probs

    @torch.no_grad()
    def generate(
        self,
        sample: PreparedSample,
        max_new_tokens: int,
        stop: set[int],
        knockout: Knockout | None = None,
        layers: tuple[int, ...] = (),
    ) -> list[int]:
        """Greedy generation with `knockout` blocked in `layers` (None: the clean model) -> the new
        token ids, a stop token excluded. The prompt rows are blocked as compiled; every generated
        row is blocked as the last prompt row (the paper's setting). The prompt runs once, then one
        row per new token against the keys/values recorded so far."""
        a = self.adapter
        dev = sample.inputs_embeds.device
        one = torch.ones(1, dtype=torch.long, device=dev)
        last_row = None
        plan = _Plan(self.backend)
        plan.recorded = [None] * a.n_layers
        if knockout is not None and layers:
            b = compile_knockout(sample.layout, knockout, dev, q0=0)
            plan.masks = {l: attention.BlockedRows([None, b], one) for l in layers}
            last_row = b.rows(b.n_rows - 1)[0]  # [N]
        *_, h = self._forward(sample, plan)
        kv = plan.recorded
        embeds, positions = sample.inputs_embeds, sample.position_ids
        out: list[int] = []
        while True:
            token = int(self._head(h[-1:])[0].argmax())
            if token in stop or len(out) == max_new_tokens:
                return out
            out.append(token)
            n = embeds.shape[1]  # the new token's row
            new = a.decoder().embed_tokens(torch.tensor([[token]], device=dev)).to(embeds.dtype)
            embeds = torch.cat([embeds, new], dim=1)
            positions = torch.cat([positions, a.next_position(positions)], dim=-1)
            grown = replace(sample, inputs_embeds=embeds, position_ids=positions)
            step = _Plan(self.backend, q_offset=n)
            step.clean_kv, step.recorded = kv, [None] * a.n_layers
            if last_row is not None:
                row = torch.cat([last_row, last_row.new_zeros(n + 1 - len(last_row))])  # [n + 1]
                row = Blocked.from_dense(n, row[None])
                step.masks = {l: attention.BlockedRows([None, row], one) for l in layers}
            rope = a.rope_rows(a.rotary(grown, embeds), n)
            pos = a.position_rows(positions, n)
            h = embeds[:, n:]
            with a.attention_implementation(attention.NAME):
                for l in range(a.n_layers):  # (the new row is text: no layer additions reach it)
                    h = a.layer_forward(l, h, rope, pos, knockout=step)
            kv = [
                (torch.cat([k, k1], dim=2), torch.cat([v, v1], dim=2))
                for (k, v), (k1, v1) in zip(kv, step.recorded)
            ]
            h = h[0]


def like_for_like(backend: str) -> str:
    """The transformers attention implementation the engine's backend is compared with."""
    return {"sdpa": "sdpa", "eager": "eager", "flex": "flex_attention"}[backend]


def canary_tolerance(dtype: torch.dtype) -> float:
    """Largest |difference| of probabilities the canary takes for rounding: 1e-5 in fp32 (a masked path
    sums in another order: about 1e-6 on a 4-layer model), 8 machine epsilons in lower precision
    (0.0625 in bf16)."""
    return max(1e-5, 8 * torch.finfo(dtype).eps)


def canary(engine: KnockoutEngine, sample: PreparedSample) -> None:
    """Stop the run unless the engine's clean pass reproduces the model's own forward (same attention
    implementation, tolerance by dtype), a knockout that blocks only pairs causality already hides
    changes nothing (through the masked path) and a total cut of the last token's attention changes
    the output."""
    a = engine.adapter
    tol = canary_tolerance(a.dtype)
    every = Window(0, tuple(range(a.n_layers)), a.n_layers, "explicit")
    clean = engine.clean(sample)
    plain = a.plain_forward(sample, like_for_like(engine.backend))
    diff = float((clean.probs - plain).abs().max())
    if diff > tol:
        raise RuntimeError(
            f"canary: the engine's clean pass ({engine.backend}) differs from the model's own "
            f"{like_for_like(engine.backend)} forward by {diff:.2e} (> {tol:g} for {a.dtype})"
        )
    noop = Knockout("future only", (Edge("last", "question"),))  # question rows never see the last key
    cut = Knockout("all -> last", (Edge("all", "last"),))
    probs = engine.run(sample, [Condition(noop, every), Condition(cut, every)], clean)
    if (probs[0] - plain).abs().max() > tol:
        raise RuntimeError("canary: a knockout that blocks nothing changed the model's output")
    if (probs[1] - plain).abs().max() <= tol:
        raise RuntimeError(
            "canary: blocking every edge into the last token changed nothing; "
            "the attention bias is not applied"
        )

"""Probes of the clean forward: the answer's probability layer by layer (the paper's Fig. 9) and the
logit lens on video tokens (Figs. 4 and 5).

One layer axis for both, transformers' `hidden_states`: state 0 is the token embeddings, state l
(1..L-1) the output of decoder layer l, and state L the last layer's output *after the final norm*
(what the lm_head reads), so the last point of every probe is the model's own output. The authors
probe layer *inputs* for the lens and layer outputs for the answer probability, so their two axes are
offset by one; here they are the same. Whether the final norm is applied to states 0..L-1 before the
answer probability's lm_head is a setting (`probes.final_norm`, recorded in every row); the lens
projects states 0..L-1 through the input embedding matrix with no norm (the paper) or through the
final norm and the lm_head (the usual logit lens), and state L, already normed, as it is. States are
probed one at a time as the forward produces them (`KnockoutEngine.states`): no layer's state,
logits or keys are kept.
"""

from __future__ import annotations

import torch

from vlmflow.knockout.engine import KnockoutEngine
from vlmflow.models.base import Adapter, PreparedSample, finite

PROJECTIONS = ("embedding", "lm_head")


def project(adapter: Adapter, h: torch.Tensor, projection: str, final_norm: bool) -> torch.Tensor:
    """Hidden states [n, d] -> vocabulary logits [n, V] (fp32): through the input embedding matrix
    (the paper's lens) or the lm_head, after the final norm if `final_norm`."""
    parts = adapter.decoder()
    if final_norm:
        h = parts.norm(h)
    if projection == "embedding":
        return (h @ parts.embed_tokens.weight.T).float()
    if projection == "lm_head":
        return parts.lm_head(h).float()
    raise ValueError(f"projection must be one of {PROJECTIONS}, got {projection!r}")


def answer_probability(
    adapter: Adapter, sample: PreparedSample, state: torch.Tensor, final_norm: bool
) -> dict:
    """One state [N, d]: the probability of the correct option's letter at the last position and the
    mean probability of the other letters, the last position projected by the lm_head (after the final
    norm if `final_norm`; pass False for state L, which is normed already)."""
    false = [t for t in sample.option_tokens if t != sample.gt_token]
    p = finite(torch.softmax(project(adapter, state[-1:], "lm_head", final_norm)[0], dim=-1))
    return dict(p_true=float(p[sample.gt_token]), p_false=float(p[false].mean()) if false else float("nan"))


def lens_top_k(
    adapter: Adapter,
    sample: PreparedSample,
    state: torch.Tensor,
    projection: str,
    final_norm: bool,
    k: int,
    chunk_bytes: int = 64 * 2**20,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logit lens on the video tokens of one state [N, d]: top-k token ids and probabilities per video
    position -> ([n_video, k] long, [n_video, k] float). Holds at most `chunk_bytes` of logits."""
    video = torch.as_tensor(sample.layout.indices("video"), device=state.device)
    vocab = adapter.decoder().embed_tokens.weight.shape[0]
    step = max(1, chunk_bytes // (4 * vocab))
    hv = state[video]  # [n_video, d]
    top = [
        torch.softmax(project(adapter, hv[i : i + step], projection, final_norm), -1).topk(k)
        for i in range(0, len(hv), step)
    ]
    return torch.cat([t.indices for t in top]), torch.cat([t.values for t in top])


@torch.no_grad()
def probe(engine: KnockoutEngine, sample: PreparedSample, final_norm: bool, projections: list[str], k: int):
    """Both probes on every state of one clean forward -> (answer rows per layer 0..L, the answer's
    lm_head after the final norm if `final_norm`; {projection: (ids [L + 1, n_video, k], probs
    [L + 1, n_video, k])}, "embedding" without norm, "lm_head" with it). State L is the final norm's
    output and is projected as it is by both probes."""
    answer, lens = [], {p: ([], []) for p in projections}
    last = engine.adapter.n_layers
    for layer, state in enumerate(engine.states(sample)):
        norm = layer < last  # state L is normed already
        answer.append(
            dict(layer=layer, **answer_probability(engine.adapter, sample, state, final_norm and norm))
        )
        for p in projections:
            ids, probs = lens_top_k(engine.adapter, sample, state, p, p == "lm_head" and norm, k)
            lens[p][0].append(ids)
            lens[p][1].append(probs)
    return answer, {p: (torch.stack(i), torch.stack(v)) for p, (i, v) in lens.items()}


def first_subtoken(tokenizer, word: str) -> int:
    """A keyword as the paper counts it: the first sub-token of the word."""
    ids = tokenizer(word, add_special_tokens=False)["input_ids"]
    if not ids or ids[0] == tokenizer.unk_token_id:
        raise ValueError(f"the tokenizer has no token for the keyword {word!r}")
    return ids[0]


def layer_bins(n_layers: int, size: int) -> list[tuple[int, int]]:
    """Layers 1..L in bins of exactly `size` layers, 1-indexed inclusive ([1, 5], [6, 10], ...); the
    last bin holds what is left. (The authors' label-inclusive slices put 6 layers in each "5-layer"
    bin, adjacent bins sharing one.)"""
    if size < 1:
        raise ValueError(f"bin size must be >= 1, got {size}")
    return [(a, min(a + size - 1, n_layers)) for a in range(1, n_layers + 1, size)]

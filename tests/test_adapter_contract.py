"""Every adapter through the same contract: layout, engine = dense-mask reference, canary.

The LLaVA video family (toy and PLLaVA-format checkpoints), transformers' LLaVA-NeXT-Video and
LLaVA-OneVision (the llava-hf format; OneVision's video ends with a token in no frame), InternVL3's
`-hf` format (per-frame spans, with and without their marker text; InternVL3.5's Qwen3 decoder),
Mini-InternVL and VideoLLaMA3 (tiny checkpoints in their released formats; VideoLLaMA3 with the
authors' frame ranges and with image tokens only), Qwen2.5-VL (transformers' format: 3-D positions
from its rope index, tokens of two frames), Qwen3-VL (time text between the groups, with and
without it in the frames; DeepStack kept, whose additions the engine applies, and dropped), and two
synthetic adapters (tests/contract_adapters.py):
per-frame video spans separated by text, and 3-D M-RoPE positions. The canary runs on every
attention backend a family declares.
"""

from dataclasses import replace

import pytest
import torch
from conftest import synthetic_sample
from contract_adapters import OPEN, MRopeAdapter, PerFrameAdapter

from vlmflow.knockout.attention import BACKENDS
from vlmflow.knockout.engine import KnockoutEngine, canary
from vlmflow.knockout.masks import blocked_pairs
from vlmflow.knockout.reference import reference_generate, reference_probs
from vlmflow.knockout.spec import EXPERIMENTS, Condition, explicit_window, sweep
from vlmflow.models.base import Adapter
from vlmflow.models.internvl import InternVLAdapter
from vlmflow.models.internvl_hf import InternVLHFAdapter
from vlmflow.models.llava_next_video import LlavaNextVideoAdapter
from vlmflow.models.llava_onevision import LlavaOnevisionAdapter
from vlmflow.models.llava_video import LlavaVideoAdapter
from vlmflow.models.qwen2_5_vl import Qwen25VLAdapter
from vlmflow.models.qwen3_vl import Qwen3VLAdapter
from vlmflow.models.videollama3 import VideoLlama3Adapter

ADAPTERS = [
    "llava_toy",
    "pllava",
    "llava_next_video",
    "llava_onevision",
    "internvl",
    "internvl_hf",
    "internvl_hf_markers",
    "internvl3_5_hf",
    "videollama3",
    "videollama3_tokens",
    "qwen2_5_vl",
    "qwen3_vl",
    "qwen3_vl_markers_drop",
    "per_frame",
    "mrope",
]


@pytest.fixture(scope="module", params=ADAPTERS)
def adapter(
    request,
    tiny_adapter,
    pllava_checkpoint,
    llava_next_video_checkpoint,
    llava_onevision_checkpoint,
    internvl_checkpoint,
    internvl_hf_checkpoint,
    internvl3_5_hf_checkpoint,
    videollama3_checkpoint,
    qwen2_5_vl_checkpoint,
    qwen3_vl_checkpoint,
) -> Adapter:
    vl3 = str(videollama3_checkpoint)
    return {
        "llava_toy": lambda: tiny_adapter,
        "pllava": lambda: LlavaVideoAdapter.from_pretrained(str(pllava_checkpoint)),
        "llava_next_video": lambda: LlavaNextVideoAdapter.from_pretrained(str(llava_next_video_checkpoint)),
        "llava_onevision": lambda: LlavaOnevisionAdapter.from_pretrained(str(llava_onevision_checkpoint)),
        "internvl": lambda: InternVLAdapter.from_pretrained(str(internvl_checkpoint)),
        "internvl_hf": lambda: InternVLHFAdapter.from_pretrained(str(internvl_hf_checkpoint)),
        "internvl_hf_markers": lambda: InternVLHFAdapter.from_pretrained(
            str(internvl_hf_checkpoint), frame_ranges="markers"
        ),
        "internvl3_5_hf": lambda: InternVLHFAdapter.from_pretrained(str(internvl3_5_hf_checkpoint)),
        "videollama3": lambda: VideoLlama3Adapter.from_pretrained(vl3, pooling_shape=(8, 2, 2)),
        "videollama3_tokens": lambda: VideoLlama3Adapter.from_pretrained(
            vl3, pooling_shape=(8, 2, 2), frame_ranges="tokens", vision_attention="per_frame"
        ),
        "qwen2_5_vl": lambda: Qwen25VLAdapter.from_pretrained(str(qwen2_5_vl_checkpoint)),
        "qwen3_vl": lambda: Qwen3VLAdapter.from_pretrained(str(qwen3_vl_checkpoint)),
        "qwen3_vl_markers_drop": lambda: Qwen3VLAdapter.from_pretrained(
            str(qwen3_vl_checkpoint), frame_ranges="markers", deepstack="drop"
        ),
        "per_frame": PerFrameAdapter.from_pretrained,
        "mrope": MRopeAdapter.from_pretrained,
    }[request.param]()


PREDICTED = 2  # the option the failure-case knockouts treat as the model's choice


def prepared(a: Adapter, task="action_sequence", seed=0):
    q, frames = synthetic_sample(task, seed)
    sample = a.prepare(q, a.video_features(a.pixel_values(frames)))
    sample.layout = replace(sample.layout, predicted_option=PREDICTED)
    return q, frames, sample


def test_layout_holds_every_video_token_once_and_the_prompt_parts(adapter):
    q, _, sample = prepared(adapter)
    L = sample.layout
    T, H, W = L.grid
    video = L.indices("video")
    assert len(video) == len(set(video.tolist())) == T * H * W
    assert sample.inputs_embeds.shape[1] == L.n_tokens
    assert video.min() > 0 and L.question[0] >= L.video_range[1] and L.last == L.n_tokens - 1
    assert set(video.tolist()) <= set(L.knockout_indices("video").tolist())
    assert all(L.frame(t)[1] - L.frame(t)[0] == H * W for t in range(T))
    assert sample.position_ids.shape[-1] == L.n_tokens


def test_per_frame_spans_are_separated_by_text():
    a = PerFrameAdapter.from_pretrained()
    q, _, sample = prepared(a)
    L = sample.layout
    assert not L.contiguous
    gaps = [(L.frame(t)[1], L.frame(t + 1)[0]) for t in range(L.grid[0] - 1)]
    assert all(b - a_ == 3 for a_, b in gaps)  # "Frame", "<t+2>", ":" between frames
    # cross-frame blocks frame t <- earlier frames' tokens, never the marker text between them
    m = blocked_pairs(L, EXPERIMENTS["cross_frame"][0])
    video = set(L.indices("video").tolist())
    rows, cols = m.nonzero(as_tuple=True)
    assert set(cols.tolist()) <= video and set(rows.tolist()) <= video
    frame_of = {i: t for t in range(L.grid[0]) for i in L.indices(f"frame[{t}]").tolist()}
    assert all(frame_of[int(c)] < frame_of[int(r)] for r, c in zip(rows, cols))
    assert int(m.sum()) == sum(t * 4 * 4 for t in range(L.grid[0]))  # 2x2 tokens per frame


def test_mrope_positions_are_three_dimensional_and_rows_slice_the_sequence():
    a = MRopeAdapter.from_pretrained()
    _, _, sample = prepared(a)
    N = sample.layout.n_tokens
    assert sample.position_ids.shape == (3, 1, N)
    v0 = sample.layout.video_range[0]
    assert not torch.equal(
        sample.position_ids[0, 0, v0:], sample.position_ids[1, 0, v0:]
    )  # t != h inside video
    q0 = N - 5
    assert torch.equal(a.position_rows(sample.position_ids, q0), sample.position_ids[:, :, q0:])
    cos, sin = a.rotary(sample, sample.inputs_embeds)
    rc, rs = a.rope_rows((cos, sin), q0)
    assert rc.shape[-2] == rs.shape[-2] == 5 and torch.equal(rc, cos[..., q0:, :])


def test_engine_equals_dense_mask_reference_for_every_family(adapter):
    q, frames, sample = prepared(adapter)
    engine = KnockoutEngine(adapter, batch_size=4)
    conds = [
        Condition(k, w)
        for fam in EXPERIMENTS.values()
        for k in fam
        for style in ("center", "bottom_up")
        for w in sweep(adapter.n_layers, 3, style)
    ]
    clean = engine.clean(sample)
    fast = engine.run(sample, conds, clean)
    ref = torch.stack([reference_probs(adapter, q, frames, c, PREDICTED) for c in conds])
    assert (fast - ref).abs().max() <= 1e-5
    pred = int(clean.probs.argmax())
    assert ((ref[:, pred] - clean.probs[pred]).abs() > 1e-4).any()  # the knockouts do change things


def test_generation_under_knockout_equals_the_reference(adapter):
    """Greedy open-ended generation (positions grown by `next_position`, 1-D or 3-D) with cross-frame
    and question -> last blocked in the first half of the layers, token for token."""
    q, frames = synthetic_sample("action_sequence", 1)
    sample = adapter.prepare(q, adapter.video_features(adapter.pixel_values(frames)), OPEN)
    layers = tuple(range(adapter.n_layers // 2))
    window = explicit_window(list(layers), adapter.n_layers)
    stop = adapter.stop_tokens
    engine = KnockoutEngine(adapter)
    for ko in [None, EXPERIMENTS["cross_frame"][0], EXPERIMENTS["vql_to_ql"][2]]:
        fast = engine.generate(sample, 5, stop, ko, layers)
        ref = reference_generate(
            adapter, q, frames, None if ko is None else Condition(ko, window), OPEN, 5, stop
        )
        assert fast == ref  # (that knockouts do change generated tokens: tests/test_engine.py)


@pytest.mark.parametrize("backend", BACKENDS)
def test_canary_passes_on_every_backend_the_family_runs(adapter, backend):
    if backend not in adapter.ATTENTION_BACKENDS:
        pytest.skip(f"the {adapter.family} family does not run {backend}")
    _, _, sample = prepared(adapter)
    canary(KnockoutEngine(adapter, backend=backend), sample)


def test_a_backend_the_family_does_not_run_is_refused(tiny_adapter, monkeypatch):
    monkeypatch.setattr(tiny_adapter, "ATTENTION_BACKENDS", ("sdpa", "eager"))
    with pytest.raises(ValueError, match=r"'flex' is not run by the llava_video family; it runs \['sdpa'"):
        KnockoutEngine(tiny_adapter, backend="flex")
    KnockoutEngine(tiny_adapter, backend="eager")

"""The qwen3_vl family on tiny checkpoints in transformers' format: the model's own forward on the
processor's token sequence, DeepStack kept (the model's own path) and dropped, 3-D positions from
its rope index, the time text between the groups and what "frame t" takes in, the clip-wide pixel
budget of the checkpoint's files, the patches, and the refusals."""

import importlib.util
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import synthetic_sample

from vlmflow.knockout.engine import KnockoutEngine
from vlmflow.knockout.masks import blocked_pairs
from vlmflow.knockout.spec import EXPERIMENTS, Condition, Edge, Knockout, explicit_window
from vlmflow.models.qwen2_5_vl import patchify
from vlmflow.models.qwen3_vl import VIDEO_DEFAULTS, Qwen3VLAdapter, group_times
from vlmflow.testing.checkpoints import write_qwen3_vl


@pytest.fixture(scope="module")
def adapter(qwen3_vl_checkpoint) -> Qwen3VLAdapter:
    return Qwen3VLAdapter.from_pretrained(str(qwen3_vl_checkpoint))


def own_forward(a: Qwen3VLAdapter, q, frames) -> torch.Tensor:
    """Next-token probabilities of the model's own forward on what transformers' processor hands it:
    the ids with each group's `<|video_pad|>` expanded, token types, patches and grid."""
    pixels = a.pixel_values(frames)
    patches, grid_thw = patchify(pixels, 16, 2, 2)
    ids, L, _ = a.encode(q)
    n = L.grid[1] * L.grid[2]
    ids = torch.tensor([[j for i in ids for j in ([i] * n if i == a.video_id else [i])]])
    with torch.no_grad():
        out = a.model(
            input_ids=ids,
            pixel_values_videos=patches,
            video_grid_thw=grid_thw,
            mm_token_type_ids=(ids == a.video_id).int() * 2,
        )
    return torch.softmax(out.logits[0, -1].float(), -1)


def test_deepstack_kept_is_the_models_own_forward_and_dropped_changes_it(adapter):
    """keep: the prepared sample (3-D positions passed explicitly, DeepStack levels as layer
    additions) gives the model's own forward, and so does the engine, which adds the levels itself;
    drop: the levels are left out of the clean run too, which changes the answer."""
    q, frames = synthetic_sample()
    video = adapter.video_features(adapter.pixel_values(frames))
    levels = len(adapter.model.config.vision_config.deepstack_visual_indexes)
    assert video.shape == (16, 1 + levels, 64) and levels == 2  # [n_video, 1 + levels, d]
    sample = adapter.prepare(q, video)
    assert len(sample.layer_additions) == levels and sample.video_tokens is video
    own = own_forward(adapter, q, frames)
    assert (own - adapter.plain_forward(sample)).abs().max() <= 1e-6
    assert (own - KnockoutEngine(adapter).clean(sample).probs).abs().max() <= 1e-6
    drop = Qwen3VLAdapter(
        adapter.model, adapter.tokenizer, adapter.processor, adapter.template, deepstack="drop"
    )
    dropped = drop.prepare(q, video)
    assert dropped.layer_additions == () and drop.text_model_inputs(dropped) == {}
    assert (drop.plain_forward(dropped) - own).abs().max() > 1e-3
    assert (KnockoutEngine(drop).clean(dropped).probs - drop.plain_forward(dropped)).abs().max() <= 1e-6
    assert adapter.settings == {"deepstack": "keep", "frame_ranges": "tokens"}
    assert drop.settings["deepstack"] == "drop"


def test_deepstack_adds_at_the_video_positions_outside_attention(adapter):
    """The levels land on the video positions' states after the first `levels` layers, whatever a
    knockout blocks (rows from q0 on when the engine recomputes only those); they reach the answer
    only through attention to those positions: with every edge out of the video cut in all layers,
    keep and drop answer alike, while the clean runs differ."""
    q, frames = synthetic_sample()
    video = adapter.video_features(adapter.pixel_values(frames)).detach()
    sample = adapter.prepare(q, video)
    rows = torch.as_tensor(sample.layout.feature_indices())
    h = torch.randn(1, sample.layout.n_tokens, 64)
    after = adapter.after_layer(0, h, sample)
    assert torch.allclose(after[0, rows] - h[0, rows], sample.layer_additions[0], atol=1e-6)
    others = torch.ones(sample.layout.n_tokens, dtype=torch.bool)
    others[rows] = False
    assert torch.equal(after[0, others], h[0, others])
    assert torch.equal(adapter.after_layer(2, h, sample), h)  # only the first `levels` layers
    q0 = int(rows[5])
    assert torch.equal(
        adapter.after_layer(1, h[:, q0:], sample, q0), adapter.after_layer(1, h, sample)[:, q0:]
    )
    drop = Qwen3VLAdapter(
        adapter.model, adapter.tokenizer, adapter.processor, adapter.template, deepstack="drop"
    )
    dropped = drop.prepare(q, video)
    cut = Condition(Knockout("video -> all", (Edge("video", "all"),)), explicit_window(list(range(4)), 4))
    kept_cut = KnockoutEngine(adapter).run(sample, [cut])[0]
    dropped_cut = KnockoutEngine(drop).run(dropped, [cut])[0]
    assert (kept_cut - dropped_cut).abs().max() <= 1e-6
    assert (adapter.plain_forward(sample) - drop.plain_forward(dropped)).abs().max() > 1e-3


def test_the_time_text_sits_between_the_groups_and_frame_t_is_a_temporal_group(adapter, qwen3_vl_checkpoint):
    q, frames = synthetic_sample()
    times = q.params["frame_times"]
    ids, L, _ = adapter.encode(q)
    text = adapter.tokenizer.decode(ids)
    stamps = [(times[2 * g] + times[2 * g + 1]) / 2 for g in range(4)]
    assert group_times(times, 2) == pytest.approx(stamps)
    expanded = "".join(f"<{t:.1f} seconds><|vision_start|><|video_pad|><|vision_end|>" for t in stamps)
    assert expanded in text and text.count("<|vision_start|>") == 4
    assert L.grid == (4, 2, 2) and not L.contiguous  # 8 frames -> 4 groups, time text between them
    assert L.frames[1][0] - L.frames[0][1] > 2 and L.frame_blocks is None  # end, time text, start
    markers = Qwen3VLAdapter.from_pretrained(str(qwen3_vl_checkpoint), frame_ranges="markers")
    Lm = markers.encode(q)[1]
    assert Lm.frames == L.frames and Lm.video_range == (Lm.frame_blocks[0][0], L.frames[-1][1] + 1)
    n = L.grid[1] * L.grid[2]
    full = [j for i in ids for j in ([i] * n if i == adapter.video_id else [i])]
    blocks = [adapter.tokenizer.decode(full[a:b]) for a, b in Lm.frame_blocks]
    assert blocks[1] == f"<{stamps[1]:.1f} seconds><|vision_start|>" + "<|video_pad|>" * n + "<|vision_end|>"
    # video -> question: with "tokens" the time text stays open to the question, with "markers" not
    vq = EXPERIMENTS["vql_to_ql"][0]
    cols_tokens = set(blocked_pairs(L, vq).nonzero(as_tuple=True)[1].tolist())
    cols_markers = set(blocked_pairs(Lm, vq).nonzero(as_tuple=True)[1].tolist())
    assert cols_tokens == set(L.indices("video").tolist()) and cols_tokens < cols_markers
    odd = replace(q, params=dict(q.params, frame_times=times[:7]))
    assert group_times(odd.params["frame_times"], 2)[-1] == times[6]  # the last frame fills its group


@pytest.mark.parametrize("wide", [False, True])
def test_positions_are_the_rope_index_one_step_per_group(adapter, wide):
    """On square and wide frames (48 x 96 -> 64 x 96 px: 2 x 3 tokens per group), the positions are
    the model's rope index on the processor's inputs (its grid from the patches), one temporal step
    per group, rows and columns apart."""
    q, frames = synthetic_sample()
    if wide:
        frames = np.concatenate([frames, frames], axis=2)
        q = replace(q, params=dict(q.params, frame_size=[48, 96]))
    pixels = adapter.pixel_values(frames)
    sample = adapter.prepare(q, adapter.video_features(pixels))
    L, pos = sample.layout, sample.position_ids
    assert pos.shape == (3, 1, L.n_tokens) and L.grid == ((4, 2, 3) if wide else (4, 2, 2))
    ids, _, _ = adapter.encode(q)
    n = L.grid[1] * L.grid[2]
    full = torch.tensor([[j for i in ids for j in ([i] * n if i == adapter.video_id else [i])]])
    _, grid_thw = patchify(pixels, 16, 2, 2)
    own, _ = adapter.model.model.get_rope_index(full, (full == adapter.video_id).int() * 2, None, grid_thw)
    assert torch.equal(pos, own)
    assert not torch.equal(pos[0, 0], torch.arange(L.n_tokens))  # not 1-D positions
    assert not torch.equal(pos[1, 0], pos[2, 0])  # height and width apart inside a group
    H, W = L.grid[1:]
    for a, b in L.frames:
        start = int(pos[0, 0, a])
        assert (pos[0, 0, a:b] == start).all()  # one temporal step per group
        assert int(pos[1, 0, b - 1]) == start + H - 1 and int(pos[2, 0, b - 1]) == start + W - 1
        assert int(pos[0, 0, b]) == start + max(H, W)  # the <|vision_end|> after it
    # the time text between groups advances the positions one per token
    a1 = L.frames[1][0]
    gap = a1 - L.frames[0][1]
    assert int(pos[0, 0, a1]) == int(pos[0, 0, L.frames[0][0]]) + max(H, W) + gap


def test_the_pixel_budget_spans_the_clip_and_comes_from_the_files(tmp_path, adapter):
    _, frames = synthetic_sample()  # 8 frames of 48 x 48
    assert adapter.processor["file"] == "video_preprocessor_config.json"
    assert adapter.pixel_values(frames).shape[-2:] == (64, 64)  # 2 x 2 tokens per group
    assert adapter.grid_of((48, 48), 32) == (1, 1)  # 32 frames share the same budget: 32 x 32 px
    small = write_qwen3_vl(tmp_path / "small", budget=(1024, 8 * 32 * 32))
    assert Qwen3VLAdapter.from_pretrained(str(small)).grid_of((48, 48), 8) == (1, 1)
    capped = write_qwen3_vl(tmp_path / "capped", budget=(4096, 16384), cap_pixels_per_frame=True)
    a = Qwen3VLAdapter.from_pretrained(str(capped))
    assert a.processor["cap_pixels_per_frame"] is True
    uncapped = dict(a.processor, cap_pixels_per_frame=None)
    b = Qwen3VLAdapter(a.model, a.tokenizer, uncapped, a.template)
    # 8 frames of 96 x 96: the budget alone leaves 32 x 32 px; the cap's floor, 1.05 x 4096 px per
    # frame, raises the clip's budget to 34400 px: 64 x 64
    assert b.grid_of((96, 96), 8) == (1, 1) and a.grid_of((96, 96), 8) == (2, 2)


def test_patches_equal_transformers_own_image_processor_on_a_still_pair(adapter):
    """Two identical frames are one still image: the patches equal transformers' PIL Qwen2-VL image
    processor's (Qwen3-VL's image class, patch 16) at the same size; the video class's defaults
    where a file is silent are read from its source."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    _, frames = synthetic_sample()
    still = np.stack([frames[3], frames[3]])[:, :, 5:]  # 48 x 43 -> 64 x 32 px
    own = Qwen2VLImageProcessorPil(
        patch_size=16, min_pixels=1024, max_pixels=4096, image_mean=[0.5] * 3, image_std=[0.5] * 3
    )
    want = own(images=[still[0]], return_tensors="pt")
    patches, grid = patchify(adapter.pixel_values(still), 16, 2, 2)
    assert torch.equal(grid, want["image_grid_thw"]) and torch.allclose(
        patches, want["pixel_values"], atol=1e-6
    )
    where = importlib.util.find_spec("transformers.models.qwen3_vl").submodule_search_locations[0]
    body = (Path(where) / "video_processing_qwen3_vl.py").read_text()
    body = body[body.index("class Qwen3VLVideoProcessor(") :]
    assert 'size = {"shortest_edge": 128 * 32 * 32, "longest_edge": 32 * 32 * 768}' in body
    assert VIDEO_DEFAULTS["size"] == {"shortest_edge": 128 * 32 * 32, "longest_edge": 32 * 32 * 768}
    for line in (
        "resample = PILImageResampling.BICUBIC",
        "image_mean = IMAGENET_STANDARD_MEAN",
        "patch_size = 16",
        "temporal_patch_size = 2",
        "merge_size = 2",
        "cap_pixels_per_frame = None",
        "max_video_tokens = 768",
    ):
        assert line in body
    assert "patches.permute(0, 1, 4, 7, 5, 8, 3, 2, 6, 9)" in body  # the order patchify follows


def test_refusals(adapter, qwen2_5_vl_checkpoint):
    q, frames = synthetic_sample()
    with pytest.raises(ValueError, match="'flex' is not run by the qwen3_vl family"):
        KnockoutEngine(adapter, backend="flex")
    no_times = replace(q, params={k: v for k, v in q.params.items() if k != "frame_times"})
    with pytest.raises(ValueError, match="needs the frames' size and times"):
        adapter.prepare(no_times, adapter.video_features(adapter.pixel_values(frames)))
    with pytest.raises(ValueError, match="qwen3_vl family takes"):
        Qwen3VLAdapter.from_pretrained(str(qwen2_5_vl_checkpoint))
    with pytest.raises(ValueError, match="deepstack must be one of"):
        Qwen3VLAdapter(adapter.model, adapter.tokenizer, adapter.processor, adapter.template, deepstack="off")
    with pytest.raises(ValueError, match="grid follows its frames"):
        Qwen3VLAdapter(
            adapter.model, adapter.tokenizer, adapter.processor, adapter.template, pooling_shape=(8, 2, 2)
        )
    assert Qwen3VLAdapter.read_facts(adapter.model_id).grid is None  # no grid before a sample


def test_probe_states_are_transformers_hidden_states_before_the_additions(adapter):
    """The probes' states are transformers' own `hidden_states` of the model with DeepStack (each
    layer's output before its addition), while the next layer reads the state with it."""
    q, frames = synthetic_sample()
    sample = adapter.prepare(q, adapter.video_features(adapter.pixel_values(frames)))
    parts = adapter.decoder()
    with torch.no_grad():
        out = parts.text_model(
            inputs_embeds=sample.inputs_embeds,
            position_ids=sample.position_ids,
            output_hidden_states=True,
            **adapter.text_model_inputs(sample),
        )
    engine = KnockoutEngine(adapter)
    states = list(engine.states(sample))
    assert len(states) == len(out.hidden_states) == adapter.n_layers + 1
    for mine, own in zip(states, out.hidden_states):
        assert (mine - own[0]).abs().max() <= 1e-5
    clean = engine.clean(sample)  # layer 1 reads layer 0's output with the first level added
    video = torch.as_tensor(sample.layout.feature_indices())
    added = states[1][video] + sample.layer_additions[0]
    assert torch.allclose(clean.hidden_in[1][video], added, atol=1e-6)


def test_frames_the_prompt_cannot_state_are_refused(tmp_path, adapter):
    q, frames = synthetic_sample()
    loader_times = replace(q, params=dict(q.params, frame_times_numpy=True))
    with pytest.raises(ValueError, match="VideoLLaMA3's loader's"):
        adapter.encode(loader_times)
    with pytest.raises(ValueError, match=r"a clip of 1 frame\(s\): qwen3_vl takes at least 2"):
        adapter.pixel_values(frames[:1])
    # min_pixels / max_pixels: Qwen2-VL's video class reads them, Qwen3-VL's does not
    (tmp_path / "video_preprocessor_config.json").write_text(
        '{"size": {"shortest_edge": 1024, "longest_edge": 4096}, "min_pixels": 1, "max_pixels": 9}'
    )
    from vlmflow.models.qwen2_5_vl import video_processor_settings

    assert video_processor_settings(str(tmp_path), VIDEO_DEFAULTS, False)["size"]["longest_edge"] == 4096
    assert video_processor_settings(str(tmp_path), VIDEO_DEFAULTS, True)["size"]["longest_edge"] == 9
    ckpt = write_qwen3_vl(tmp_path / "pixels", budget=(1024, 4096))
    config = ckpt / "video_preprocessor_config.json"
    config.write_text(config.read_text().replace('"fps": 2', '"min_pixels": 1, "max_pixels": 9, "fps": 2'))
    assert Qwen3VLAdapter.from_pretrained(str(ckpt)).processor["size"]["longest_edge"] == 4096

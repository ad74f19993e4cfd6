"""The qwen2_5_vl family on tiny checkpoints in transformers' format: the model's own forward (its own
positions), 3-D positions from its rope index, the per-sample grid, temporal groups of two frames,
the pixel budget and the patches of the checkpoint's processor files, and the refusals."""

import importlib.util
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import synthetic_sample

from vlmflow.knockout.engine import KnockoutEngine
from vlmflow.models.qwen2_5_vl import VIDEO_DEFAULTS, Qwen25VLAdapter, patchify
from vlmflow.testing.checkpoints import write_qwen2_5_vl


@pytest.fixture(scope="module")
def adapter(qwen2_5_vl_checkpoint) -> Qwen25VLAdapter:
    return Qwen25VLAdapter.from_pretrained(str(qwen2_5_vl_checkpoint))


def own_inputs(a: Qwen25VLAdapter, q, frames):
    """What transformers' processor hands the model: the ids with `<|video_pad|>` expanded, token
    types, patches, grid and seconds per group."""
    pixels = a.pixel_values(frames)
    patches, grid_thw = patchify(pixels, 14, 2, 2)
    ids, L, _ = a.encode(q)
    n = L.grid[0] * L.grid[1] * L.grid[2]
    full = [j for i in ids for j in ([i] * n if i == a.video_id else [i])]
    ids = torch.tensor([full])
    types = (ids == a.video_id).int() * 2
    seconds = torch.tensor([a.seconds_per_group(q)])
    return dict(
        input_ids=ids,
        pixel_values_videos=patches,
        video_grid_thw=grid_thw,
        second_per_grid_ts=seconds,
        mm_token_type_ids=types,
    )


def test_the_prepared_sample_gives_the_models_own_forward(adapter):
    """The model computes its own 3-D positions from the processor's inputs; the engine's plain
    forward on the adapter's prepared sample (positions passed explicitly) gives the same answer."""
    q, frames = synthetic_sample()
    sample = adapter.prepare(q, adapter.video_features(adapter.pixel_values(frames)))
    with torch.no_grad():
        out = adapter.model(**own_inputs(adapter, q, frames))
    own = torch.softmax(out.logits[0, -1].float(), -1)
    assert (own - adapter.plain_forward(sample)).abs().max() <= 1e-6


def test_positions_are_the_rope_index_in_three_dimensions(adapter):
    q, frames = synthetic_sample()
    sample = adapter.prepare(q, adapter.video_features(adapter.pixel_values(frames)))
    L, pos = sample.layout, sample.position_ids
    inputs = own_inputs(adapter, q, frames)
    own, _ = adapter.model.model.get_rope_index(
        inputs["input_ids"],
        inputs["mm_token_type_ids"],
        None,
        inputs["video_grid_thw"],
        inputs["second_per_grid_ts"],
    )
    assert pos.shape == (3, 1, L.n_tokens) and torch.equal(pos, own)
    assert not torch.equal(pos[0, 0], torch.arange(L.n_tokens))  # not 1-D positions
    v0 = L.frames[0][0]
    tps = adapter.model.config.vision_config.tokens_per_second
    step = int(tps * adapter.seconds_per_group(q))  # 2 tokens/s x (2 frames x 0.25 s) = 1
    assert [int(pos[0, 0, a]) for a, _ in L.frames] == [v0 + t * step for t in range(4)]
    H, W = L.grid[1:]
    assert (
        int(pos[1, 0, L.frames[0][1] - 1]) == v0 + H - 1 and int(pos[2, 0, L.frames[0][1] - 1]) == v0 + W - 1
    )
    assert int(pos[0, 0, L.frames[-1][1]]) == v0 + max(H, W)  # the installed transformers' rule
    assert adapter.settings == {"text_after_video": "start+max(h,w)"}
    slower = replace(q, params=dict(q.params, frame_times=[2 * t for t in q.params["frame_times"]]))
    moved = adapter.prepare(slower, adapter.video_features(adapter.pixel_values(frames))).position_ids
    assert int(moved[0, 0, L.frames[1][0]]) == v0 + 2 * step  # seconds per group from the real times


def test_a_token_covers_two_frames_and_the_grid_is_per_sample(adapter):
    q, frames = synthetic_sample()
    L = adapter.prepare(q, adapter.video_features(adapter.pixel_values(frames))).layout
    assert L.grid == (4, 2, 2) and L.contiguous  # 8 frames -> 4 temporal groups of 2 x 2 tokens
    wide = np.concatenate([frames, frames], axis=2)  # 48 x 96 frames
    qw = replace(q, params=dict(q.params, frame_size=[48, 96]))
    Lw = adapter.prepare(qw, adapter.video_features(adapter.pixel_values(wide))).layout
    assert Lw.grid == (4, 2, 3)  # smart_resize(48, 96) = 56 x 84 px
    sixteen = np.repeat(frames, 2, axis=0)
    q16 = replace(q, params=dict(q.params, frame_times=list(np.linspace(0.5, 2.5, 16))))
    assert adapter.prepare(q16, adapter.video_features(adapter.pixel_values(sixteen))).layout.grid == (
        8,
        2,
        2,
    )
    odd = adapter.pixel_values(frames[:7])
    assert len(odd) == 8 and torch.equal(odd[7], odd[6])  # padded with the last frame, as the processor


def test_patches_equal_transformers_own_image_processor_on_a_still_pair(adapter):
    """Two identical frames are one still image: the patches equal transformers' PIL Qwen2-VL image
    processor's (which repeats an image over the temporal patch) with the same budget; the video
    class's defaults where a file is silent are read from its source."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    _, frames = synthetic_sample()
    still = np.stack([frames[3], frames[3]])[:, :, 5:]  # 48 x 43
    size = adapter.processor["size"]
    own = Qwen2VLImageProcessorPil(min_pixels=size["shortest_edge"], max_pixels=size["longest_edge"])
    want = own(images=[still[0]], return_tensors="pt")
    patches, grid = patchify(adapter.pixel_values(still), 14, 2, 2)
    assert torch.equal(grid, want["image_grid_thw"]) and torch.allclose(
        patches, want["pixel_values"], atol=1e-6
    )
    where = importlib.util.find_spec("transformers.models.qwen2_vl").submodule_search_locations[0]
    body = (Path(where) / "video_processing_qwen2_vl.py").read_text()
    body = body[body.index("class Qwen2VLVideoProcessor(") :]
    assert 'size = {"shortest_edge": 128 * 28 * 28, "longest_edge": 28 * 28 * 768}' in body
    assert VIDEO_DEFAULTS["size"] == {"shortest_edge": 128 * 28 * 28, "longest_edge": 28 * 28 * 768}
    for line in (
        "resample = PILImageResampling.BICUBIC",
        "temporal_patch_size = 2",
        "merge_size = 2",
        "patch_size = 14",
    ):
        assert line in body
    assert "patches.permute(0, 1, 4, 7, 5, 8, 3, 2, 6, 9)" in body  # the order patchify follows


def test_the_pixel_budget_comes_from_the_checkpoints_files(tmp_path, adapter):
    _, frames = synthetic_sample()
    big = Qwen25VLAdapter.from_pretrained(str(write_qwen2_5_vl(tmp_path / "big", min_pixels=112 * 112)))
    assert (
        big.processor["file"] == "preprocessor_config.json"
        and big.processor["size"]["shortest_edge"] == 12544
    )
    assert big.pixel_values(frames).shape[-2:] == (112, 112)  # 4 x 4 tokens per group, not 2 x 2
    video = Qwen25VLAdapter.from_pretrained(
        str(write_qwen2_5_vl(tmp_path / "video", video_budget=(3136, 3136)))
    )
    assert video.processor["file"] == "video_preprocessor_config.json"
    assert video.grid_of((48, 96), 8) == (1, 2)  # the video file's own budget: 28 x 56 px


def test_refusals(tmp_path, adapter, llava_onevision_checkpoint):
    q, frames = synthetic_sample()
    with pytest.raises(ValueError, match="'flex' is not run by the qwen2_5_vl family"):
        KnockoutEngine(adapter, backend="flex")
    no_size = replace(q, params={k: v for k, v in q.params.items() if k != "frame_size"})
    with pytest.raises(ValueError, match="needs the frames' size and times"):
        adapter.prepare(no_size, adapter.video_features(adapter.pixel_values(frames)))
    with pytest.raises(ValueError, match="qwen2_5_vl family takes"):
        Qwen25VLAdapter.from_pretrained(str(llava_onevision_checkpoint))
    with pytest.raises(ValueError, match="grid follows its frames"):
        Qwen25VLAdapter(
            adapter.model, adapter.tokenizer, adapter.processor, adapter.template, pooling_shape=(8, 2, 2)
        )
    assert Qwen25VLAdapter.read_facts(adapter.model_id).grid is None  # no grid before a sample

"""The internvl_hf family on tiny checkpoints in transformers' InternVL format: the model's own forward
on the processor's expansion of the video, per-frame spans and their marker text, the checkpoint's
processor files (the video class needs torchvision: its defaults are checked against its source),
both weight-name forms, and the refusals."""

import importlib.util
import json
import re
from pathlib import Path

import pytest
import torch
from conftest import synthetic_sample
from safetensors.torch import load_file, save_file

from vlmflow.knockout.masks import compile_knockout
from vlmflow.knockout.spec import Edge, Knockout
from vlmflow.models.internvl_hf import VIDEO_DEFAULTS, InternVLHFAdapter
from vlmflow.testing.checkpoints import INTERNVL_HF_TEMPLATE, write_internvl_hf


@pytest.fixture(scope="module")
def adapter(internvl_hf_checkpoint) -> InternVLHFAdapter:
    return InternVLHFAdapter.from_pretrained(str(internvl_hf_checkpoint))


def processor_text(a: InternVLHFAdapter, text: str) -> str:
    """The prompt as transformers' InternVLProcessor writes it: each frame's `<IMG_CONTEXT>` repeated
    once per video token of the frame."""
    return text.replace(a.context, a.context * (a.grid[1] * a.grid[2]))


def test_the_prepared_sample_gives_the_models_own_forward(adapter):
    q, frames = synthetic_sample()
    pixels = adapter.pixel_values(frames)
    sample = adapter.prepare(q, adapter.video_features(pixels))
    text = processor_text(adapter, adapter.tokenizer.decode(adapter.encode(q)[0]))
    ids = adapter.tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = adapter.model(input_ids=ids, pixel_values=pixels)
    own = torch.softmax(out.logits[0, -1].float(), -1)
    assert sample.layout.n_tokens == ids.shape[1]
    assert (own - adapter.plain_forward(sample)).abs().max() <= 1e-6


def test_frames_are_spans_separated_by_their_marker_text(adapter):
    q, _ = synthetic_sample()
    ids, L, _ = adapter.encode(q)
    full = adapter.tokenizer(processor_text(adapter, adapter.tokenizer.decode(ids)))["input_ids"]
    text = lambda a, b: adapter.tokenizer.decode(full[a:b])  # noqa: E731
    assert not L.contiguous and L.grid == (8, 2, 2) and L.frame_blocks is None
    assert text(*L.frames[0]) == adapter.context * 4
    assert [text(L.frames[t][1], L.frames[t + 1][0]) for t in range(7)] == [
        f"</img>\nFrame{t + 2}: <img>" for t in range(7)
    ]
    assert text(*L.non_option_question).strip() == q.question
    assert text(0, L.frames[0][0]).endswith("<|im_start|>user\nFrame1: <img>")
    assert adapter.tokenizer.decode(ids).endswith("<|im_end|>\n<|im_start|>assistant\nBest option:(")


def test_marker_frame_ranges_take_in_each_frames_text(internvl_hf_checkpoint, adapter):
    """frame_ranges: markers: frame t's block is its "\\n", `Frame{t+1}: <img>`, tokens and `</img>`;
    video -> question then blocks the marker text too, and the setting is recorded."""
    markers = InternVLHFAdapter.from_pretrained(str(internvl_hf_checkpoint), frame_ranges="markers")
    q, frames = synthetic_sample()
    L = markers.prepare(q, markers.video_features(markers.pixel_values(frames))).layout
    ids = markers.encode(q)[0]
    full = markers.tokenizer(processor_text(markers, markers.tokenizer.decode(ids)))["input_ids"]
    text = lambda span: markers.tokenizer.decode(full[span[0] : span[1]])  # noqa: E731
    assert text(L.frame_blocks[0]) == "Frame1: <img>" + markers.context * 4 + "</img>"
    assert text(L.frame_blocks[3]) == "\nFrame4: <img>" + markers.context * 4 + "</img>"
    assert all(L.frame_blocks[t][1] == L.frame_blocks[t + 1][0] for t in range(7))  # no gap
    cut = compile_knockout(L, Knockout("v -> q", (Edge("video", "question"),)))
    row = cut.rows(L.question[0] - cut.q0, L.question[0] - cut.q0 + 1)[0]
    between = L.frames[0][1]  # the `</img>` after frame 1
    assert row[between] and row[L.frames[2][0]]
    plain = adapter.prepare(q, adapter.video_features(adapter.pixel_values(frames))).layout
    tokens_only = compile_knockout(plain, Knockout("v -> q", (Edge("video", "question"),)))
    assert not tokens_only.rows(0, tokens_only.n_rows)[:, between].any()  # open without markers
    assert markers.settings == {"frame_ranges": "markers"} and adapter.settings == {"frame_ranges": "tokens"}


def test_preprocessing_reads_the_checkpoints_files_as_transformers_does(tmp_path, adapter):
    """Mean and std from the video processor file; each frame equals transformers' own PIL image
    processor of the family (GotOcr2's, one tile: no crop to patches); the defaults where a file is
    silent are the video class's, read from its source."""
    from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil

    _, frames = synthetic_sample()
    s = adapter.model.config.vision_config.image_size[0]
    p = adapter.processor
    own = GotOcr2ImageProcessorPil(
        size={"height": s, "width": s},
        crop_to_patches=False,
        image_mean=p["image_mean"],
        image_std=p["image_std"],
    )
    assert torch.equal(
        adapter.pixel_values(frames[:, :, 10:]),
        own(images=list(frames[:, :, 10:]), return_tensors="pt")["pixel_values"],
    )
    half = write_internvl_hf(tmp_path / "half", image_mean=[0.5, 0.5, 0.5])
    shifted = InternVLHFAdapter.from_pretrained(str(half)).pixel_values(frames)
    std = torch.tensor(p["image_std"]).view(1, 3, 1, 1)
    expect = (torch.tensor(p["image_mean"]).view(1, 3, 1, 1) - 0.5) / std
    assert torch.allclose(shifted - adapter.pixel_values(frames), expect, atol=1e-5)
    where = importlib.util.find_spec("transformers.models.internvl").submodule_search_locations[0]
    source = (Path(where) / "video_processing_internvl.py").read_text()
    body = source[source.index("class InternVLVideoProcessor") :]
    assert "resample = PILImageResampling.BICUBIC" in body and VIDEO_DEFAULTS["resample"] == 3
    assert "image_mean = OPENAI_CLIP_MEAN" in body and "image_std = OPENAI_CLIP_STD" in body
    assert (
        re.search(r'size = \{"height": 384, "width": 384\}', body) and VIDEO_DEFAULTS["size"]["height"] == 384
    )
    for switch in ("do_resize", "do_rescale", "do_normalize", "do_convert_rgb"):
        assert f"{switch} = True" in body and VIDEO_DEFAULTS[switch] is True


def test_without_a_video_processor_file_the_image_processors_is_read(tmp_path, adapter):
    path = write_internvl_hf(tmp_path / "image-only", video_processor_file=False)
    other = InternVLHFAdapter.from_pretrained(str(path))
    assert other.processor["size"] == {"height": 56, "width": 56}
    assert other.processor["image_mean"] == adapter.processor["image_mean"]
    for name in ("preprocessor_config.json",):
        (path / name).unlink()
    with pytest.raises(ValueError, match="no video_preprocessor_config.json or preprocessor_config.json"):
        InternVLHFAdapter.from_pretrained(str(path))


def test_weights_load_as_save_pretrained_writes_them_and_under_transformers_own_names(tmp_path, adapter):
    path = write_internvl_hf(tmp_path / "names")
    weights = path / "model.safetensors"
    state = load_file(str(weights))
    assert any(k.startswith("language_model.model.") for k in state)  # what save_pretrained writes
    own = {k: v for k, v in adapter.model.state_dict().items()}  # model.language_model.*, lm_head.*
    save_file({k: v.contiguous() for k, v in own.items()}, str(weights), metadata={"format": "pt"})
    other = InternVLHFAdapter.from_pretrained(str(path))
    q, frames = synthetic_sample()
    a, b = (x.prepare(q, x.video_features(x.pixel_values(frames))) for x in (adapter, other))
    assert torch.equal(adapter.plain_forward(a), other.plain_forward(b))
    missing = dict(state)
    missing.pop(next(k for k in state if "layers.1.mlp" in k))
    save_file(missing, str(weights), metadata={"format": "pt"})
    with pytest.raises(ValueError, match="1 weights missing"):
        InternVLHFAdapter.from_pretrained(str(path))


def test_other_formats_and_files_are_refused(tmp_path, internvl_checkpoint, pllava_checkpoint):
    with pytest.raises(ValueError, match="InternVL's released format is the internvl family"):
        InternVLHFAdapter.from_pretrained(str(internvl_checkpoint))
    with pytest.raises(ValueError, match="internvl_hf family takes"):
        InternVLHFAdapter.from_pretrained(str(pllava_checkpoint))
    path = write_internvl_hf(tmp_path / "tokens")
    cfg = json.loads((path / "tokenizer_config.json").read_text())
    cfg.pop("video_token")
    (path / "tokenizer_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"its tokenizer names no \['video_token'\]"):
        InternVLHFAdapter.from_pretrained(str(path))
    no_video = write_internvl_hf(
        tmp_path / "template", chat_template=INTERNVL_HF_TEMPLATE.replace("<video>", "")
    )
    with pytest.raises(ValueError, match="does not write the video"):
        InternVLHFAdapter.from_pretrained(str(no_video))


def test_the_config_check_reads_depth_heads_and_grid_before_loading(internvl_hf_checkpoint, adapter):
    facts = InternVLHFAdapter.read_facts(str(internvl_hf_checkpoint))
    assert (facts.n_layers, facts.n_heads, facts.grid) == (4, 4, (8, 2, 2))
    assert InternVLHFAdapter.read_facts(str(internvl_hf_checkpoint), (16, 2, 2)).grid == (16, 2, 2)
    with pytest.raises(ValueError, match="gives 2 x 2 tokens per frame"):
        InternVLHFAdapter(
            adapter.model, adapter.tokenizer, adapter.processor, adapter.template, pooling_shape=(8, 16, 16)
        )

"""The llava_onevision family on tiny checkpoints in the llava-hf format: the model's own forward,
the vision layer that feeds the projector, the newline after the video and where the knockouts put
it, the checkpoint's processor files, both weight-name forms, and flex attention without a float mask."""

import pytest
import torch
from conftest import synthetic_sample
from test_llava_next_video import expanded_ids

from vlmflow.knockout.engine import KnockoutEngine, canary
from vlmflow.knockout.masks import compile_knockout
from vlmflow.knockout.spec import EXPERIMENTS, Edge, Knockout
from vlmflow.models.llava_onevision import LlavaOnevisionAdapter
from vlmflow.testing.checkpoints import write_llava_onevision


@pytest.fixture(scope="module")
def adapter(llava_onevision_checkpoint) -> LlavaOnevisionAdapter:
    return LlavaOnevisionAdapter.from_pretrained(str(llava_onevision_checkpoint))


def test_the_prepared_sample_gives_the_models_own_forward(adapter):
    q, frames = synthetic_sample()
    pixels = adapter.pixel_values(frames)
    sample = adapter.prepare(q, adapter.video_features(pixels))
    ids, _, _ = adapter.encode(q)
    with torch.no_grad():
        ids = torch.tensor([expanded_ids(adapter, ids)])
        out = adapter.model(input_ids=ids, pixel_values_videos=pixels[None])
    own = torch.softmax(out.logits[0, -1].float(), -1)
    assert (own - adapter.plain_forward(sample)).abs().max() <= 1e-6
    assert sample.layout.n_tokens == ids.shape[1]


def test_the_projector_reads_the_last_layer_before_the_post_layernorm(adapter):
    """By hand: SigLIP's embeddings and encoder layers, no post-LayerNorm, the projector, bilinear
    pooling of the 5 x 5 patches to 3 x 3, frames in order, then the newline vector."""
    _, frames = synthetic_sample()
    pixels = adapter.pixel_values(frames)  # [8, 3, 70, 70]
    m = adapter.model.model
    with torch.no_grad():
        tower = m.vision_tower
        h = tower.embeddings(pixels)  # [8, 25, d_v]
        for layer in tower.encoder.layers:
            h = layer(h, attention_mask=None)
            h = h[0] if isinstance(h, tuple) else h

        def pooled(states):
            x = m.multi_modal_projector(states).view(8, 5, 5, -1).permute(0, 3, 1, 2)
            x = torch.nn.functional.interpolate(x, size=(3, 3), mode="bilinear")
            return torch.cat([x.permute(0, 2, 3, 1).reshape(72, -1), m.image_newline[None]])

        ours = adapter.video_features(pixels)  # [8 * 9 + 1, d]
        assert ours.shape == (73, adapter.model.config.text_config.hidden_size)
        assert (ours - pooled(h)).abs().max() <= 1e-5
        assert (ours - pooled(tower.post_layernorm(h))).abs().max() > 1e-2  # the other reading differs


def test_the_newline_is_in_the_knockouts_video_and_in_no_frame(adapter):
    q, frames = synthetic_sample()
    sample = adapter.prepare(q, adapter.video_features(adapter.pixel_values(frames)))
    L = sample.layout
    ids, _, _ = adapter.encode(q)
    full = expanded_ids(adapter, ids)
    newline = L.frames[-1][1]
    assert L.video_tail == (newline, newline + 1) and full[newline] == adapter.video_id
    assert L.contiguous and L.grid == (8, 3, 3) and len(L.indices("video")) == 72
    assert newline in L.knockout_indices("video") and newline not in L.indices("video")
    assert all(newline not in L.knockout_indices(f"frame[{t}]") for t in range(8))
    assert L.video_range == (L.frames[0][0], newline + 1) and L.question[0] > newline
    # the newline's embedding is the model's image_newline vector
    assert torch.equal(sample.inputs_embeds[0, newline], adapter.model.model.image_newline.to(adapter.dtype))
    video_question = compile_knockout(L, Knockout("v -> q", (Edge("video", "question"),)))
    row = L.question[0] - video_question.q0
    assert video_question.rows(row, row + 1)[0, newline]  # video -> question cuts the newline too
    cross = compile_knockout(L, EXPERIMENTS["cross_frame"][0])
    assert not cross.rows(0, cross.n_rows)[:, newline].any()  # no frame attends "from" it


def test_the_layout_regions_decode_to_their_text(adapter):
    q, _ = synthetic_sample()
    ids, L, _ = adapter.encode(q)
    full = expanded_ids(adapter, ids)
    text = lambda span: adapter.tokenizer.decode(full[span[0] : span[1]]).strip()  # noqa: E731
    assert text(L.non_option_question) == q.question
    assert [text(o) for o in L.options] == [f"({c}) {t}" for c, t in zip("ABCD", q.candidates)]
    decoded = adapter.tokenizer.decode(ids)
    assert "<|im_end|>\n<|im_start|>user\n<video>\nQuestion: " in decoded
    assert decoded.endswith("<|im_end|>\n<|im_start|>assistant\nBest option:(")
    assert adapter.tokenizer.convert_tokens_to_ids("<|im_end|>") in adapter.stop_tokens


def test_preprocessing_reads_the_checkpoints_files_and_resizes_as_transformers(tmp_path, adapter):
    """Mean and std from video_preprocessor_config.json (0.5 here, not the class's CLIP defaults),
    and each frame equals the base image of transformers' own PIL OneVision image processor."""
    from transformers.image_utils import OPENAI_CLIP_MEAN
    from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
        LlavaOnevisionImageProcessorPil,
    )

    _, frames = synthetic_sample()
    assert list(adapter.video_processor.image_mean) == [0.5] * 3
    s = adapter.model.config.vision_config.image_size
    own = LlavaOnevisionImageProcessorPil(
        size={"height": s, "width": s},
        image_grid_pinpoints=[[s, s]],
        image_mean=[0.5] * 3,
        image_std=[0.5] * 3,
    )
    base = own(images=list(frames[:, :, 10:]), return_tensors="pt")["pixel_values"][:, 0]  # non-square
    assert torch.equal(adapter.pixel_values(frames[:, :, 10:]), base)
    clip = write_llava_onevision(tmp_path / "clip-mean", image_mean=list(OPENAI_CLIP_MEAN))
    other = LlavaOnevisionAdapter.from_pretrained(str(clip)).pixel_values(frames)
    shift = (torch.tensor(OPENAI_CLIP_MEAN) - 0.5).view(1, 3, 1, 1) / 0.5
    assert torch.allclose(adapter.pixel_values(frames) - other, shift, atol=1e-5)


def test_weights_load_under_the_hub_names_and_as_save_pretrained_writes_them(tmp_path, adapter):
    from safetensors import safe_open

    saved = write_llava_onevision(tmp_path / "saved", keys="saved")
    with safe_open(str(saved / "model.safetensors"), "pt") as f:
        assert any(k.startswith("vision_tower.encoder.") for k in f.keys())  # no vision_model level
    hub = adapter.model_id
    with safe_open(f"{hub}/model.safetensors", "pt") as f:
        assert any(k.startswith("vision_tower.vision_model.encoder.") for k in f.keys())
    other = LlavaOnevisionAdapter.from_pretrained(str(saved))
    q, frames = synthetic_sample()
    a, b = (x.prepare(q, x.video_features(x.pixel_values(frames))) for x in (adapter, other))
    assert torch.equal(adapter.plain_forward(a), other.plain_forward(b))  # same seed: same model


def test_flex_attention_is_never_handed_a_float_mask(adapter, monkeypatch):
    """The canary on flex (the model's own flex forward and the engine's) with every attention call
    recorded: no 4-D float mask reaches transformers' flex attention."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    own = ALL_ATTENTION_FUNCTIONS["flex_attention"]
    masks = []

    def recording(module, query, key, value, attention_mask, *args, **kw):
        masks.append(attention_mask)
        return own(module, query, key, value, attention_mask, *args, **kw)

    monkeypatch.setitem(ALL_ATTENTION_FUNCTIONS._global_mapping, "flex_attention", recording)
    q, frames = synthetic_sample()
    canary(
        KnockoutEngine(adapter, backend="flex"),
        adapter.prepare(q, adapter.video_features(adapter.pixel_values(frames))),
    )
    assert masks  # the model's own flex forward ran through it
    assert not any(isinstance(m, torch.Tensor) and m.is_floating_point() for m in masks)


def test_another_architecture_is_refused_and_facts_are_read_before_loading(
    llava_next_video_checkpoint, llava_onevision_checkpoint
):
    with pytest.raises(ValueError, match="llava_onevision family takes llava-hf's LLaVA-OneVision"):
        LlavaOnevisionAdapter.from_pretrained(str(llava_next_video_checkpoint))
    facts = LlavaOnevisionAdapter.read_facts(str(llava_onevision_checkpoint))
    assert (facts.n_layers, facts.n_heads, facts.grid) == (4, 4, (8, 3, 3))


def test_a_processor_file_of_another_size_is_refused(tmp_path):
    import json

    path = write_llava_onevision(tmp_path / "size")
    cfg = json.loads((path / "video_preprocessor_config.json").read_text())
    cfg["size"] = {"height": 56, "width": 56}
    (path / "video_preprocessor_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="gives frames of 56 x 56 px"):
        LlavaOnevisionAdapter.from_pretrained(str(path))

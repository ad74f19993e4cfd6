"""Mini-InternVL and VideoLLaMA3 from tiny random checkpoints written in their released on-disk
formats (config fields, key names, fused weights, tokenizer special tokens): strict loading, the
format traps, the prompt regions and video spans, and agreement with transformers' own forward."""

import json

import numpy as np
import pytest
import torch
from conftest import synthetic_sample
from safetensors.torch import load_file, save_file

from vlmflow.models.internvl import InternVLAdapter, phi3_rope
from vlmflow.models.videollama3 import VideoLlama3Adapter
from vlmflow.testing.checkpoints import (
    INTERNVL_TINY,
    VIDEOLLAMA3_TINY,
    build_internvl,
    build_videollama3,
    phi3_tokenizer,
    qwen2_tokenizer,
)

GRID3 = (8, 2, 2)


@pytest.fixture(scope="module")
def internvl(internvl_checkpoint):
    return InternVLAdapter.from_pretrained(str(internvl_checkpoint))


@pytest.fixture(scope="module")
def videollama3(videollama3_checkpoint):
    return VideoLlama3Adapter.from_pretrained(str(videollama3_checkpoint), pooling_shape=GRID3)


def _same_weights(loaded, native):
    a, b = loaded.state_dict(), native.state_dict()
    assert set(a) == set(b)
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:3]


def test_internvl_loads_every_released_weight_into_its_place(internvl):
    native = build_internvl(INTERNVL_TINY, phi3_tokenizer(), seed=0)
    _same_weights(internvl.model, native)  # fused qkv split back into q, k, v; renames exact
    lm = internvl.decoder()
    assert lm.lm_head.weight.data_ptr() != lm.embed_tokens.weight.data_ptr()  # not tied


def test_internvl_phi3_su_rope_keeps_its_factors_and_attention_factor(internvl):
    # the real Phi-3-mini-128k numbers: 131072 / 4096 -> sqrt(1 + ln 32 / ln 4096)
    rope = phi3_rope(
        {
            "rope_scaling": {"type": "su", "short_factor": [1.0] * 48, "long_factor": [2.0] * 48},
            "original_max_position_embeddings": 4096,
            "max_position_embeddings": 131072,
        }
    )
    assert rope["rope_type"] == "longrope" and abs(rope["attention_factor"] - 1.1902380714) < 1e-9
    rotary = internvl.decoder().rotary_emb
    cfg = internvl.model.config.text_config
    short = torch.tensor(cfg.rope_parameters["short_factor"])
    dim = cfg.hidden_size // cfg.num_attention_heads
    plain = 1.0 / (10000.0 ** (torch.arange(0, dim, 2).float() / dim))
    assert torch.allclose(rotary.inv_freq, plain / short)  # short factors in use (prompt < 4096)
    assert abs(rotary.attention_scaling - 1.1902380714) < 1e-9


def test_internvl_prompt_regions_decode_to_their_text(internvl):
    q, frames = synthetic_sample()
    ids, L, letters = internvl.encode(q)
    sample = internvl.prepare(q, internvl.video_features(internvl.pixel_values(frames)))
    T, H, W = internvl.grid
    assert (T, H, W) == (8, 2, 2) and sample.layout.n_tokens == len(ids) + T * H * W - 1
    assert L.contiguous and L.frames[0][1] - L.frames[0][0] == H * W  # one <IMG_CONTEXT> -> T*H*W tokens
    tok = internvl.tokenizer
    p = L.frames[0][0]  # in prompt-token coordinates the placeholder sits at p
    assert tok.convert_ids_to_tokens(ids[p - 1 : p + 2]) == ["<img>", "<IMG_CONTEXT>", "</img>"]
    shift = T * H * W - 1

    def text(span):
        return tok.decode(ids[span[0] - shift : span[1] - shift])

    assert text(L.question).startswith("Question: " + q.question) and text(L.question).endswith(
        q.candidates[-1]
    )
    assert [text(o) for o in L.options] == [f"({k}) {c}" for k, c in zip("ABCD", q.candidates)]
    assert text(L.non_option_question) == q.question
    assert tok.decode(ids[-1:]).endswith("(")  # the answer is read after "Best option:("
    assert "<|assistant|>" in tok.decode(ids[L.question[1] - shift :])
    assert tok.convert_ids_to_tokens(letters) == list("ABCD")
    assert "<|end|>" in tok.convert_ids_to_tokens(list(internvl.stop_tokens))  # Phi-3's end of turn


def test_internvl_reads_the_released_sentencepiece_tokenizer(internvl_checkpoint):
    files = {f.name for f in internvl_checkpoint.iterdir()}
    assert {"tokenizer.model", "tokenizer_config.json"} <= files and "tokenizer.json" not in files
    cfg = json.loads((internvl_checkpoint / "tokenizer_config.json").read_text())
    rstrip = {t["content"]: t["rstrip"] for t in cfg["added_tokens_decoder"].values()}
    assert rstrip["<|user|>"] and not rstrip["<IMG_CONTEXT>"]


def test_internvl_adapter_forward_equals_transformers_own(internvl):
    """The adapter's prompt + spliced video through the decoder = InternVLForConditionalGeneration's
    forward on the expanded input_ids and the pixels."""
    q, frames = synthetic_sample()
    pix = internvl.pixel_values(frames)
    sample = internvl.prepare(q, internvl.video_features(pix))
    ids, L, _ = internvl.encode(q)
    p, n = L.frames[0][0], internvl.grid[0] * 4
    expanded = ids[:p] + [ids[p]] * n + ids[p + 1 :]
    with torch.no_grad():
        logits = internvl.model(input_ids=torch.tensor([expanded]), pixel_values=pix).logits[0, -1]
    assert torch.allclose(internvl.plain_forward(sample), torch.softmax(logits.float(), -1), atol=1e-6)


@pytest.mark.parametrize("damage", ["missing", "misshaped"])
def test_released_checkpoints_load_strictly(damage, internvl_checkpoint, videollama3_checkpoint, tmp_path):
    for src, cls in [(internvl_checkpoint, InternVLAdapter), (videollama3_checkpoint, VideoLlama3Adapter)]:
        out = tmp_path / src.name
        out.mkdir()
        for f in src.iterdir():
            (out / f.name).write_bytes(f.read_bytes())
        state = load_file(str(out / "model.safetensors"))
        key = sorted(k for k in state if "layers.1." in k and k.endswith("weight"))[0]
        if damage == "missing":
            del state[key]
        else:
            state[key] = state[key][:-1]
        save_file(state, str(out / "model.safetensors"))
        with pytest.raises(ValueError, match="missing" if damage == "missing" else "misshaped"):
            cls.from_pretrained(str(out))


def test_other_formats_are_refused_with_the_family_named(pllava_checkpoint):
    with pytest.raises(ValueError, match="internvl_chat"):
        InternVLAdapter.from_pretrained(str(pllava_checkpoint))
    with pytest.raises(ValueError, match="videollama3_qwen2"):
        VideoLlama3Adapter.from_pretrained(str(pllava_checkpoint))


def test_videollama3_loads_every_released_weight_into_its_place(videollama3, videollama3_checkpoint):
    native = build_videollama3(VIDEOLLAMA3_TINY, qwen2_tokenizer(), seed=0)
    _same_weights(videollama3.model, native)
    cfg = json.loads((videollama3_checkpoint / "config.json").read_text())
    assert cfg["use_token_compression"] is True  # released on; the adapter never compresses
    assert videollama3.model.config.text_config.rope_parameters["rope_theta"] == cfg["rope_theta"]


def test_videollama3_frames_are_separated_by_their_time_text(videollama3):
    q, frames = synthetic_sample()
    ids, L, letters = videollama3.encode(q)
    tok = videollama3.tokenizer
    T, H, W = GRID3
    assert not L.contiguous and all(b - a == H * W for a, b in L.frames)

    def expanded_text(span):  # decode expanded positions back through the prompt ids
        where = [i for i, t in enumerate(ids) if t == videollama3.image_id]
        out, pos = [], 0
        for i, t in enumerate(ids):
            width = H * W if i in where else 1
            if span[0] <= pos < span[1]:
                out.append(t)
            pos += width
        return tok.decode(out)

    times = q.params["frame_times"]
    for t in range(T):
        gap = expanded_text((L.frames[t - 1][1] if t else L.frame_blocks[0][0], L.frames[t][0]))
        assert gap == ("," if t else "") + f"Time {times[t]:.1f}s:"
        # the authors' range of frame t: its comma (t > 0), time text and image tokens
        assert expanded_text(L.frame_blocks[t]) == gap + "<image>"
    assert expanded_text((0, L.frame_blocks[0][0])) == "<|im_start|>user\n"
    # the knockouts' "video" and "frame[t]" are the blocks; the probes' "video" the image tokens
    assert L.knockout_spans("video") == list(L.frame_blocks) and L.spans("video") == list(L.frames)
    assert L.knockout_spans("frame[2]") == [L.frame_blocks[2]] and L.knockout_spans("last") == L.spans("last")
    assert expanded_text((L.frame_blocks[-1][1], L.question[0])) == "\n"
    assert expanded_text(L.question).startswith("Question: ") and expanded_text(L.question).endswith(
        q.candidates[-1]
    )
    assert expanded_text((L.question[1], L.n_tokens)).endswith("<|im_end|>\n<|im_start|>assistant\n")
    assert tok.decode(ids[-1:]) == "\n"  # no answer pre-fill: the last token is the newline
    assert tok.convert_ids_to_tokens(letters) == list("ABCD")
    assert "<|im_end|>" in tok.convert_ids_to_tokens(list(videollama3.stop_tokens))


def test_videollama3_without_frame_times_says_what_is_missing(videollama3):
    q, _ = synthetic_sample()
    del q.params["frame_times"]
    with pytest.raises(ValueError, match="frame_times"):
        videollama3.encode(q)


def test_videollama3_vision_attention_switch(videollama3_checkpoint):
    """per_frame: a frame's tokens do not depend on other frames; released_eager: they do, and its
    attention is softmax(q k^T * scale + 1[same frame]) over all frames."""
    from vlmflow.models.videollama3 import _released_eager_attention

    q, frames = synthetic_sample()
    out = {}
    for mode in ("per_frame", "released_eager"):
        a = VideoLlama3Adapter.from_pretrained(
            str(videollama3_checkpoint), pooling_shape=GRID3, vision_attention=mode
        )
        pix = a.pixel_values(frames)
        other = pix.clone()
        other[0] = -other[0]
        out[mode] = (a.video_features(pix), a.video_features(other))
        assert a.settings["vision_attention"] == mode
    hw = GRID3[1] * GRID3[2]
    same, changed = out["per_frame"]
    assert torch.equal(same[hw:], changed[hw:]) and not torch.equal(same[:hw], changed[:hw])
    same, changed = out["released_eager"]
    assert not torch.allclose(same[hw:], changed[hw:])
    assert not torch.allclose(out["released_eager"][0], out["per_frame"][0])

    g = torch.Generator().manual_seed(0)
    qs, ks, vs = (torch.randn(1, 2, 6, 4, generator=g) for _ in range(3))
    frame = torch.tensor([0, 0, 0, 1, 1, 1])
    in_frame = (frame[:, None] == frame[None, :]).float()
    got, _ = _released_eager_attention(None, qs, ks, vs, None, 0.5, in_frame=in_frame)
    want = torch.softmax(qs @ ks.transpose(-1, -2) * 0.5 + in_frame, -1) @ vs
    assert torch.allclose(got, want.transpose(1, 2), atol=1e-6)


def test_videollama3_adapter_forward_equals_transformers_own(videollama3_checkpoint):
    """With per-frame vision attention (transformers' own), the adapter's decoder inputs give the
    same answer as VideoLlama3ForConditionalGeneration on the expanded prompt and the frames."""
    a = VideoLlama3Adapter.from_pretrained(
        str(videollama3_checkpoint), pooling_shape=GRID3, vision_attention="per_frame"
    )
    q, frames = synthetic_sample()
    pix = a.pixel_values(frames)
    sample = a.prepare(q, a.video_features(pix))
    ids, _, _ = a.encode(q)
    hw = GRID3[1] * GRID3[2]
    expanded = [t for i in ids for t in ([i] * hw if i == a.image_id else [i])]
    T, C, Hp, Wp = pix.shape
    # transformers' own image processor patchifies the same resized frames (no further resize)
    from PIL import Image
    from transformers import VideoLlama3ImageProcessorPil

    resized = [np.asarray(Image.fromarray(f).resize((Wp, Hp), Image.BICUBIC)) for f in frames]
    proc = VideoLlama3ImageProcessorPil(image_mean=[0.5] * 3, image_std=[0.5] * 3)
    px = proc(images=resized, merge_size=2, size={"shortest_edge": 28 * 28, "longest_edge": Hp * Wp})
    assert px["image_grid_thw"].tolist() == [[1, Hp // 14, Wp // 14]] * T
    patches = torch.as_tensor(px["pixel_values"]).float()
    with torch.no_grad():
        logits = a.model(
            input_ids=torch.tensor([expanded]),
            pixel_values_videos=patches,
            video_grid_thw=torch.tensor([[T, Hp // 14, Wp // 14]]),
            video_merge_sizes=torch.tensor([2]),
        ).logits[0, -1]
    assert torch.allclose(a.plain_forward(sample), torch.softmax(logits.float(), -1), atol=1e-6)


def test_bf16_weights_on_disk_load_as_released(tmp_path):
    """The released checkpoints are bf16 on disk: loaded in fp32, every weight is its bf16 value."""
    from vlmflow.testing.checkpoints import write_internvl, write_videollama3

    cases = [
        (write_internvl, InternVLAdapter, build_internvl, INTERNVL_TINY, phi3_tokenizer),
        (write_videollama3, VideoLlama3Adapter, build_videollama3, VIDEOLLAMA3_TINY, qwen2_tokenizer),
    ]
    for write, cls, build, shape, tokenizer in cases:
        path = write(tmp_path / cls.family, dtype=torch.bfloat16)
        loaded = cls.from_pretrained(str(path), dtype=torch.float32)
        native = build(shape, tokenizer(), seed=0).to(torch.bfloat16).float()
        _same_weights(loaded.model, native)
        assert loaded.dtype == torch.float32


def test_released_key_names_are_the_published_ones(internvl_checkpoint, videollama3_checkpoint):
    """The fixtures' weight names, anchored to names published outside this project: InternVL's
    modeling code and transformers' InternVL conversion table; a VideoLLaMA3 checkpoint key quoted
    in the VideoLLaMA3 repository's issue tracker."""
    internvl = set(load_file(str(internvl_checkpoint / "model.safetensors")))
    assert {
        "vision_model.embeddings.class_embedding",
        "vision_model.embeddings.position_embedding",
        "vision_model.encoder.layers.0.attn.qkv.weight",
        "vision_model.encoder.layers.0.ls1",
        "mlp1.0.weight",
        "mlp1.3.weight",
        "language_model.model.layers.0.self_attn.qkv_proj.weight",
        "language_model.model.layers.0.mlp.gate_up_proj.weight",
        "language_model.lm_head.weight",
    } <= internvl
    videollama3 = set(load_file(str(videollama3_checkpoint / "model.safetensors")))
    assert {
        "model.vision_encoder.encoder.layers.1.mlp.fc1.bias",
        "model.mm_projector.readout.0.weight",
        "model.mm_projector.readout.2.weight",
        "model.layers.0.self_attn.q_proj.bias",
        "model.embed_tokens.weight",
        "lm_head.weight",
    } <= videollama3


def test_the_checkpoints_attention_choice_is_not_taken(internvl):
    # the released llm_config asks for flash attention; transformers' default is used instead
    assert internvl.model.config.text_config._attn_implementation in ("sdpa", "eager")


def test_frames_that_do_not_fit_the_layout_are_refused(internvl):
    q, frames = synthetic_sample()
    sixteen = internvl.video_features(internvl.pixel_values(np.concatenate([frames, frames])))
    with pytest.raises(ValueError, match="64 video tokens where the layout holds 8 x 2 x 2"):
        internvl.prepare(q, sixteen)


def test_settings_of_another_family_and_device_map_are_refused(internvl_checkpoint, videollama3_checkpoint):
    from vlmflow.settings import model_settings

    entry = dict(family="internvl", path=str(internvl_checkpoint), window=2, vision_attention="per_frame")
    with pytest.raises(ValueError, match=r"\['vision_attention'\] not a setting of the internvl family"):
        model_settings("m", entry)
    for family, path in [("internvl", internvl_checkpoint), ("videollama3", videollama3_checkpoint)]:
        with pytest.raises(ValueError, match="device_map is not supported by the .* family"):
            model_settings("m", dict(family=family, path=str(path), window=2, device_map="auto"))
    with pytest.raises(ValueError, match=r"frame_ranges must be one of \['authors', 'tokens'\]"):
        model_settings("m", dict(family="videollama3", path=str(path), window=2, frame_ranges="all"))


def test_videollama3_vision_attention_is_set_by_each_adapter(videollama3_checkpoint):
    """Two adapters over one model: each sets the vision attention it was asked for."""
    eager = VideoLlama3Adapter.from_pretrained(str(videollama3_checkpoint), pooling_shape=GRID3)
    q, frames = synthetic_sample()
    pix = eager.pixel_values(frames)
    mixed = eager.video_features(pix)
    per_frame = VideoLlama3Adapter(
        eager.model, eager.tokenizer, [0.5] * 3, [0.5] * 3, GRID3, vision_attention="per_frame"
    )
    separate = per_frame.video_features(pix)
    assert not torch.allclose(mixed, separate)
    again = VideoLlama3Adapter(eager.model, eager.tokenizer, [0.5] * 3, [0.5] * 3, GRID3)
    assert torch.allclose(again.video_features(pix), mixed)


def test_one_rename_table_reads_and_writes_each_released_format(
    internvl_checkpoint, videollama3_checkpoint, pllava_checkpoint
):
    """Each family's released names and transformers' names are one table, read forwards when
    loading and backwards by the fixture writers: every released weight name goes there and back."""
    from vlmflow.models import internvl as iv
    from vlmflow.models import videollama3 as vl3
    from vlmflow.models.llava_video import RELEASED_NAMES

    cases = [(iv.RENAMES, internvl_checkpoint), (vl3.RENAMES, videollama3_checkpoint)]
    cases.append((RELEASED_NAMES, pllava_checkpoint))
    for table, ckpt in cases:
        keys = [k for k in load_file(str(ckpt / "model.safetensors")) if not iv.QKV.match(k)]
        assert keys and all(table.released(table.native(k)) == k for k in keys)
    with pytest.raises(ValueError, match="has no place in transformers"):
        iv.RENAMES.native("vision_model.something.else")

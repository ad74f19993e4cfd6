"""The llava_next_video family on tiny checkpoints in the llava-hf format: the model's own forward,
the checkpoint's chat template, its processor files, strict loading."""

import inspect

import pytest
import torch
from conftest import synthetic_sample
from safetensors.torch import load_file, save_file

from vlmflow.models.llava_next_video import LlavaNextVideoAdapter, pil_video_processor
from vlmflow.testing.checkpoints import write_llava_next_video

CHATML = (  # the ChatML form of the llava-hf templates (the 34B's Yi chat)
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n'}}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}{{ '<video>\\n' }}"
    "{% endfor %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] }}{% endfor %}{{'<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


@pytest.fixture(scope="module")
def adapter(llava_next_video_checkpoint) -> LlavaNextVideoAdapter:
    return LlavaNextVideoAdapter.from_pretrained(str(llava_next_video_checkpoint))


def expanded_ids(a: LlavaNextVideoAdapter, ids: list[int]) -> list[int]:
    """The prompt ids with `<video>` repeated once per video token (and per token of the video's
    tail: OneVision's newline), as the processor writes them."""
    n = a.grid[0] * a.grid[1] * a.grid[2] + a.TAIL
    return [j for i in ids for j in ([i] * n if i == a.video_id else [i])]


def test_the_prepared_sample_gives_the_models_own_forward(adapter):
    """The model's own forward on the processor's token sequence (the placeholder expanded) and the
    frames equals the adapter's prepared sample, run by the engine's plain forward."""
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


def test_the_layout_regions_decode_to_their_text(adapter):
    q, frames = synthetic_sample()
    ids, L, _ = adapter.encode(q)
    full = expanded_ids(adapter, ids)
    text = lambda span: adapter.tokenizer.decode(full[span[0] : span[1]]).strip()  # noqa: E731
    assert text(L.non_option_question) == q.question
    assert text(L.question).startswith("Question: ") and text(L.question).endswith(q.candidates[-1])
    assert [text(o) for o in L.options] == [f"({c}) {t}" for c, t in zip("ABCD", q.candidates)]
    assert set(full[L.video_range[0] : L.video_range[1]]) == {adapter.video_id}
    assert L.contiguous and L.grid == (8, 2, 2)  # frames back to back, 2 x 2 pooled tokens each
    decoded = adapter.tokenizer.decode(ids)
    assert " USER: <video>\nQuestion: " in decoded and decoded.endswith(" ASSISTANT:Best option:(")


def test_the_prompt_is_the_checkpoints_own_chat_template(tmp_path):
    """A checkpoint with another template gets that template's prompt, the regions placed in it."""
    path = write_llava_next_video(tmp_path / "chatml", chat_template=CHATML)
    a = LlavaNextVideoAdapter.from_pretrained(str(path))
    q, _ = synthetic_sample()
    ids, L, _ = a.encode(q)
    text = a.tokenizer.decode(ids)
    assert text.count("<|im_start|>") == 3 and "<|im_start|>user\n<video>\nQuestion: " in text
    assert text.endswith("<|im_end|>\n<|im_start|>assistant\nBest option:(")
    assert a.tokenizer.decode(expanded_ids(a, ids)[slice(*L.non_option_question)]).strip() == q.question


def test_a_template_without_the_video_is_refused(tmp_path):
    no_video = CHATML.replace("{{ '<video>\\n' }}", "")
    path = write_llava_next_video(tmp_path / "no-video", chat_template=no_video)
    with pytest.raises(ValueError, match="does not write the video"):
        LlavaNextVideoAdapter.from_pretrained(str(path))


def test_preprocessing_reads_the_checkpoints_video_processor_file(tmp_path, adapter):
    """Mean and std come from video_preprocessor_config.json (a checkpoint saying 0.5 gets 0.5), and
    the PIL steps are the ones transformers' video processor declares and runs, in its order."""
    from transformers.models.llava_next_video.video_processing_llava_next_video import (
        LlavaNextVideoVideoProcessor,
    )
    from transformers.video_processing_utils import BaseVideoProcessor

    half = LlavaNextVideoAdapter.from_pretrained(
        str(write_llava_next_video(tmp_path / "half", image_mean=[0.5, 0.5, 0.5]))
    )
    _, frames = synthetic_sample()
    clip, mean_half = adapter.pixel_values(frames), half.pixel_values(frames)
    std = torch.tensor(adapter.video_processor.image_std).view(1, 3, 1, 1)
    clip_mean = torch.tensor(adapter.video_processor.image_mean).view(1, 3, 1, 1)
    assert torch.allclose(mean_half - clip, (clip_mean - 0.5) / std, atol=1e-5)
    pil = pil_video_processor(adapter.video_processor)
    cls = LlavaNextVideoVideoProcessor
    assert (pil.resample, pil.do_center_crop, cls.default_to_square) == (cls.resample, True, False)
    source = inspect.getsource(BaseVideoProcessor._preprocess)
    steps = [source.index(s) for s in ("self.resize(", "self.center_crop(", "self.rescale_and_normalize(")]
    assert steps == sorted(steps)  # resize, then crop, then rescale + normalise, as the PIL path


def test_loading_is_strict(tmp_path):
    path = write_llava_next_video(tmp_path / "strict")
    weights = path / "model.safetensors"
    state = load_file(str(weights))
    missing = dict(state)
    missing.pop(next(k for k in state if "layers.1.mlp" in k))
    save_file(missing, str(weights), metadata={"format": "pt"})
    with pytest.raises(ValueError, match="1 weights missing"):
        LlavaNextVideoAdapter.from_pretrained(str(path))
    save_file({**state, "extra.weight": torch.zeros(2)}, str(weights), metadata={"format": "pt"})
    with pytest.raises(ValueError, match="1 unexpected"):
        LlavaNextVideoAdapter.from_pretrained(str(path))


def test_another_architecture_and_a_wrong_grid_are_refused(tmp_path, pllava_checkpoint, adapter):
    with pytest.raises(ValueError, match="llava_next_video family takes"):
        LlavaNextVideoAdapter.from_pretrained(str(pllava_checkpoint))
    with pytest.raises(ValueError, match=r"pools every frame to 2 x 2"):
        a = adapter
        LlavaNextVideoAdapter(a.model, a.tokenizer, a.video_processor, a.template, pooling_shape=(8, 12, 12))
    _, frames = synthetic_sample()
    with pytest.raises(ValueError, match="set n_frames"):
        adapter.pixel_values(frames[:4])


def test_the_config_check_reads_depth_heads_and_grid_before_loading(llava_next_video_checkpoint):
    facts = LlavaNextVideoAdapter.read_facts(str(llava_next_video_checkpoint))
    assert (facts.n_layers, facts.n_heads, facts.grid) == (4, 4, (8, 2, 2))
    assert LlavaNextVideoAdapter.read_facts(str(llava_next_video_checkpoint), (16, 2, 2)).grid == (16, 2, 2)


def test_a_template_that_changes_the_users_text_is_refused(tmp_path):
    """A template that rewrites what it is given (here: upper case) frames the marker the same way,
    but the prompt it would render is not the one built: every prompt is checked against it."""
    upper = CHATML.replace("{{ content['text'] }}", "{{ content['text'] | upper }}")
    a = LlavaNextVideoAdapter.from_pretrained(
        str(write_llava_next_video(tmp_path / "upper", chat_template=upper))
    )
    q, _ = synthetic_sample()
    with pytest.raises(ValueError, match="is not what the checkpoint's chat template renders"):
        a.encode(q)

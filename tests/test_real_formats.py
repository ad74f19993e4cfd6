"""The paper's real formats on fixtures: PLLaVA-format and llava-hf LLaVA-NeXT checkpoints (tiny,
random weights, hub key names), TVBench and TOMATO trees with real mp4 files."""

import shutil

import pytest
import torch
from conftest import synthetic_sample, write_tomato_fixture
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from vlmflow.data import tomato
from vlmflow.models import load_adapter
from vlmflow.models.llava_video import LlavaVideoAdapter
from vlmflow.prompt import MVBENCH_SYSTEM


@pytest.fixture(scope="module")
def pllava(pllava_checkpoint):
    return load_adapter("llava_video", str(pllava_checkpoint))


def test_pllava_weights_load_under_their_hub_names(pllava, pllava_checkpoint):
    f = safe_open(str(pllava_checkpoint / "model.safetensors"), "pt")
    assert any(k.startswith("vision_tower.vision_model.") for k in f.keys())
    m = pllava.model
    pairs = {
        "vision_tower.vision_model.embeddings.patch_embedding.weight": (
            m.model.vision_tower.embeddings.patch_embedding.weight
        ),
        "multi_modal_projector.linear_2.weight": m.model.multi_modal_projector.linear_2.weight,
        "language_model.model.layers.1.self_attn.q_proj.weight": m.model.language_model.layers[
            1
        ].self_attn.q_proj.weight,
        "language_model.lm_head.weight": m.lm_head.weight,
    }
    for key, param in pairs.items():
        assert torch.equal(f.get_tensor(key), param), key
    assert pllava.grid == (8, 2, 2) and pllava.system_prompt == MVBENCH_SYSTEM


def test_pooling_shape_override_and_video_tokens(pllava_checkpoint):
    a = LlavaVideoAdapter.from_pretrained(str(pllava_checkpoint), pooling_shape="8-1-1")
    _, frames = synthetic_sample()
    tokens = a.video_features(a.pixel_values(frames))  # [T*H*W, d]
    assert a.grid == (8, 1, 1) and tokens.shape == (8, a.model.config.text_config.hidden_size)
    with pytest.raises(ValueError, match="cannot be pooled"):
        a.video_features(a.pixel_values(frames[:4]))


@pytest.mark.parametrize("case", ["missing", "shape"])
def test_a_damaged_checkpoint_is_an_error_naming_it(pllava_checkpoint, tmp_path, case):
    bad = shutil.copytree(pllava_checkpoint, tmp_path / f"bad-{case}")
    state = load_file(bad / "model.safetensors")
    if case == "missing":
        state.pop("multi_modal_projector.linear_2.weight")
    else:
        state["multi_modal_projector.linear_2.weight"] = torch.zeros(3, 3)
    save_file(state, str(bad / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ValueError, match=f"bad-{case}"):
        LlavaVideoAdapter.from_pretrained(str(bad))


def test_llava_next_base_runs_the_same_video_path(llava_next_checkpoint):
    a = load_adapter("llava_video", str(llava_next_checkpoint), pooling_shape=(8, 2, 2))
    assert type(a.model).__name__ == "LlavaNextForConditionalGeneration"
    q, frames = synthetic_sample()
    pix = a.pixel_values(frames)
    assert pix.shape == (8, 3, 56, 56)  # one CLIP crop per frame, no AnyRes tiles
    sample = a.prepare(q, a.video_features(pix))
    assert sample.layout.video_range[1] - sample.layout.video_range[0] == 32
    assert sample.inputs_embeds.shape[1] == sample.layout.n_tokens


@pytest.mark.parametrize("which", ["pllava", "llava_next"])
def test_every_region_decodes_to_its_text_with_the_llama_tokenizer(
    which, pllava_checkpoint, llava_next_checkpoint
):
    path = pllava_checkpoint if which == "pllava" else llava_next_checkpoint
    a = load_adapter("llava_video", str(path), pooling_shape=(8, 2, 2))
    q, _ = synthetic_sample("action_sequence", seed=3)
    ids, layout, letters = a.encode(q)
    shift = (
        layout.video_range[1] - layout.video_range[0] - 1
    )  # text positions after the placeholder move by this

    def text(span):
        return a.tokenizer.decode(ids[span[0] - shift : span[1] - shift]).strip()

    assert ids[0] == a.tokenizer.bos_token_id
    assert text(layout.question).startswith("Question:") and text(layout.question).endswith(q.candidates[-1])
    assert text(layout.non_option_question) == q.question
    for k, opt in enumerate(layout.options):
        assert text(opt) == f"({'ABCD'[k]}) {q.candidates[k]}"
    assert a.tokenizer.decode(ids[-1:]) == "(" and a.tokenizer.convert_ids_to_tokens(letters) == list("ABCD")


def test_a_prompt_longer_than_the_context_is_refused(pllava):
    q, _ = synthetic_sample()
    ctx = pllava.model.config.text_config.max_position_embeddings
    pllava.model.config.text_config.max_position_embeddings = 40
    try:
        with pytest.raises(ValueError, match="exceeds the context"):
            pllava.encode(q)
    finally:
        pllava.model.config.text_config.max_position_embeddings = ctx


def test_tomato_loader_reads_dict_entries_and_skips_bad_answers(tmp_path):
    root = write_tomato_fixture(tmp_path)
    qs, skipped = tomato.load_task(root, "shape&trend")
    assert [q.sample_id for q in qs] == ["shape&trend_0", "shape&trend_1", "shape&trend_2"]
    assert qs[1].video.endswith("videos/object/shape_trend-001.mp4") and qs[1].answer_index == 1
    assert skipped[0]["sample_id"] == "shape&trend_3" and "not an index" in skipped[0]["reason"]
    with pytest.raises(FileNotFoundError, match="jsons/velocity&frequency.json"):
        tomato.load_task(root, "velocity&frequency")


def test_task_ids_follow_the_sorted_annotation_files(tmp_path):
    from vlmflow.data.formats import task_id

    root = tmp_path / "tvb"
    (root / "json").mkdir(parents=True)
    names = [
        "action_antonym",
        "action_count",
        "action_localization",
        "action_sequence",
        "egocentric_sequence",
        "moving_direction",
        "object_count",
        "object_shuffle",
        "scene_transition",
        "unexpected_action",
    ]
    for n in names[::-1]:
        (root / "json" / f"{n}.json").write_text("[]")
    ids = {
        t: task_id("tvbench", str(root), t)
        for t in ["action_antonym", "action_sequence", "scene_transition", "moving_direction", "object_count"]
    }
    assert ids == {
        "action_antonym": 0,
        "action_sequence": 3,
        "scene_transition": 8,
        "moving_direction": 5,
        "object_count": 6,
    }  # the paper's task ids

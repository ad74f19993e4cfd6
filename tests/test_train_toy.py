import numpy as np
import pandas as pd
import pytest
import torch
from conftest import REPO

from vlmflow.data import synthetic
from vlmflow.models import toy
from vlmflow.models.llava_video import LlavaVideoAdapter
from vlmflow.stages.toy_training import STAGE_TASKS, Batcher, Segment, ToyTrainer, Words, train

PROMPTS = {
    "moving_direction": "The {colour} square moves to the",
    "scene_transition": "The scene in the video changes from",
}


def test_training_pixels_equal_the_image_processor(tiny_adapter):
    b = Batcher(tiny_adapter, STAGE_TASKS["video"], seed=0)
    qs = b.questions(3)
    batch = b.batch(qs)
    for q, pix in zip(qs, batch["pixels"]):
        ref = tiny_adapter.pixel_values(synthetic.render(q, synthetic.sampled_indices(q)))
        assert torch.allclose(pix, ref, atol=1e-5)


def test_open_ended_batches_teacher_force_the_words_and_end_of_sequence(tiny_adapter):
    b = Batcher(
        tiny_adapter, {"moving_direction": 1.0, "scene_transition": 1.0}, 0, 1.0, PROMPTS, ["left", "sea"]
    )
    qs = b.questions(6)
    batch = b.batch(qs)
    eos = tiny_adapter.tokenizer.eos_token_id
    for q, ans, choice, lens in zip(qs, batch["answers"], batch["choice"], batch["lens"]):
        words = tiny_adapter.tokenizer.convert_ids_to_tokens(ans[:-1])
        expected = q.answer.split()[1:] if q.task == "scene_transition" else q.answer.split()
        assert words == expected and ans[-1] == eos and choice == -1
        assert lens == [b.lens_ids[w] for w in q.answer.split() if w in b.lens_ids]
    out = ToyTrainer(tiny_adapter, "cpu").forward(batch)
    assert out["logits"].shape[0] == sum(map(len, batch["answers"])) and out["pointer"] is None
    mc = b.batch(qs, open_ended=False)
    assert [len(a) for a in mc["answers"]] == [1] * 6 and (mc["choice"] >= 0).all()


def test_held_out_exact_match_is_what_greedy_generation_gives():
    """The trainer scores open-ended answers by teacher-forced argmax; greedy decoding must agree. On
    the committed image model's corner questions ("top left", ...) some answers are right and some
    wrong in their second word, so a score that looked at one word only would differ."""
    import yaml

    from vlmflow.knockout.engine import KnockoutEngine
    from vlmflow.open_ended import exact_match, open_answer

    prompts = yaml.safe_load((REPO / "config.yaml").read_text())["datasets"]["synthetic"]["answer_prompts"]
    a = toy.load(REPO / "models/toy-image")
    b = Batcher(a, {"static_position": 1.0}, 0, 1.0, prompts)
    rows = ToyTrainer(a, "cpu").accuracy(b, ["static_position"], 16, seed=5)
    b.rng = np.random.default_rng(5)
    engine, hits = KnockoutEngine(a), []
    for q in b.questions(16, "static_position"):
        oa = open_answer(q, prompts)
        video = a.video_features(a.pixel_values(synthetic.render(q, synthetic.sampled_indices(q))))
        ids = engine.generate(a.prepare(q, video, oa), 8, {a.tokenizer.eos_token_id})
        hits.append(exact_match(a.tokenizer.decode(ids), oa.reference) and len(ids) < 8)
    assert 0 < np.mean(hits) < 1
    assert rows[0]["open_exact"] == pytest.approx(np.mean(hits))


def test_extending_the_vocabulary_keeps_every_known_row(tiny_checkpoint):
    a = LlavaVideoAdapter.from_pretrained(str(tiny_checkpoint), system_prompt=toy.SYSTEM_PROMPT)
    old_vocab, old_emb = a.tokenizer.get_vocab(), a.model.get_input_embeddings().weight.clone()
    old_head = a.model.get_output_embeddings().weight.clone()
    a = toy.extend_vocabulary(a, synthetic.vocabulary(["Zebra words here"]), seed=0)
    new_vocab = a.tokenizer.get_vocab()
    assert {"Zebra", "words", "here"} <= set(new_vocab) and len(new_vocab) == len(old_vocab) + 3
    emb, head = a.model.get_input_embeddings().weight, a.model.get_output_embeddings().weight
    for t, i in old_vocab.items():
        assert torch.equal(emb[new_vocab[t]], old_emb[i]) and torch.equal(head[new_vocab[t]], old_head[i])
    assert toy.extend_vocabulary(a, synthetic.vocabulary(), seed=0) is a  # nothing new: unchanged


def test_a_short_training_run_saves_a_loadable_checkpoint(tmp_path):
    import yaml

    ds = yaml.safe_load((REPO / "config.yaml").read_text())["datasets"]["synthetic"]
    train("image", Segment(steps=3, seed=0, eval_every=3), tmp_path / "img")
    words = Words(ds["answer_prompts"], tuple(ds["lens_words"]["spatial"] + ds["lens_words"]["temporal"]))
    seg = Segment(
        steps=2, seed=1, eval_every=2, task_weights={"moving_direction": 3.0}, open_ended=0.5, lens_weight=1.0
    )
    train("video", seg, tmp_path / "vid", init=tmp_path / "img", words=words)
    a = LlavaVideoAdapter.from_pretrained(str(tmp_path / "vid"), system_prompt=toy.SYSTEM_PROMPT)
    assert a.position_mode == "frame_shared" and a.grid == (8, 3, 3)
    assert "changes" in a.tokenizer.get_vocab()  # the answer prompts' words joined the vocabulary
    ev = pd.read_csv(tmp_path / "vid" / "training_eval.csv")
    assert set(ev.task) == set(STAGE_TASKS["video"]) and ev.step.eq(2).all()
    assert ev.open_exact.between(0, 1).all()
    log = pd.read_csv(tmp_path / "vid" / "training_log.csv")
    assert np.isfinite(log.loss).all() and (log.lens > 0).all()

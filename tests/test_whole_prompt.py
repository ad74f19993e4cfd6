"""Pieces of the prompt are found in the tokenized whole prompt, never by tokenizing a piece on its
own: Fig. 6's query words under a tokenizer that merges across the question's end, and the
open-ended reference's first token after the answer prompt."""

import numpy as np
import pandas as pd
import pytest
from conftest import synthetic_sample
from test_features import features_job

from vlmflow.data import synthetic
from vlmflow.jobs import Job
from vlmflow.models import toy
from vlmflow.models.encoding import continuation_ids
from vlmflow.models.llava_video import LlavaVideoAdapter
from vlmflow.stages.features import cache_task
from vlmflow.stages.probes import AttentionJob, attention_task, query_positions

MERGED = "appear?\nOptions:\n(A)"  # one token, as a BPE merge across the question's end makes it


@pytest.fixture(scope="module")
def merging_adapter():
    """A toy LLaVA whose tokenizer holds the question's last word, its "?", "Options:" and "(A)" as
    one token: the question alone tokenizes to more tokens than it covers in the prompt."""
    from tokenizers import AddedToken

    tok = toy.build_tokenizer(synthetic.vocabulary())
    tok.add_tokens([AddedToken(MERGED, normalized=False)])
    model = toy.build_model(tok, 0, synthetic.SIZE)
    return LlavaVideoAdapter(
        model, tok, toy.build_image_processor(synthetic.SIZE), system_prompt=toy.SYSTEM_PROMPT
    )


def test_query_words_are_placed_by_offsets_in_the_whole_prompt(merging_adapter):
    q, _ = synthetic_sample("action_sequence")  # "In which order do the squares appear?"
    ids, layout, _ = merging_adapter.encode(q)
    tok = merging_adapter.tokenizer
    alone = tok(q.question, add_special_tokens=False)["input_ids"]
    a, b = layout.non_option_question
    assert len(alone) != b - a  # the merge: the question has another token count in the prompt
    shift = layout.n_tokens - len(ids)  # the one placeholder became the video's tokens
    where = query_positions(q, layout, ["order", "appear", "zebra"])
    assert set(where) == {"order", "appear"}  # a word not in the question is left out
    assert tok.decode([ids[where["order"] - shift]]) == "order"
    assert tok.convert_ids_to_tokens(ids[where["appear"] - shift]) == MERGED
    assert where["appear"] == b - 1  # the last token of the question region


def test_attention_maps_record_samples_without_query_words_and_go_on(merging_adapter, tmp_path):
    (q1, f1), (q2, f2) = synthetic_sample("action_sequence", 1), synthetic_sample("object_count", 2)
    rows = [
        dict(
            sample_id=s,
            task="t",
            question=q.question,
            candidates=q.candidates,
            answer_index=q.answer_index,
            video="",
        )
        for s, q in (("has_words", q1), ("no_words", q2))
    ]
    pd.DataFrame(rows).to_parquet(tmp_path / "q.parquet")
    np.savez(tmp_path / "f.npz", frames=np.stack([f1, f2]))
    cache_task(merging_adapter, features_job(tmp_path, "merging"))
    base = pd.read_parquet(tmp_path / "base.parquet")
    base.assign(correct_base=True).to_parquet(tmp_path / "base.parquet")  # both as answered right
    settings = AttentionJob(None, ("appear",), (1, 2), n_samples=2, backend="sdpa")
    inputs = dict(
        questions=tmp_path / "q.parquet", features=tmp_path / "feat.pt", baseline=tmp_path / "base.parquet"
    )
    outputs = dict(attention=tmp_path / "att.parquet", skipped=tmp_path / "skip.parquet")
    attention_task(merging_adapter, Job(settings, inputs, outputs, dataset="synthetic", model="merging"))
    att, skipped = pd.read_parquet(tmp_path / "att.parquet"), pd.read_parquet(tmp_path / "skip.parquet")
    assert set(att.sample_id) == {"has_words"} and set(att.word) == {"appear"}
    assert set(att.condition) == {"baseline", "no cross-frame"}
    assert list(skipped.sample_id) == ["no_words"] and "none of the query words" in skipped.reason[0]


def test_the_open_ended_reference_is_read_where_it_follows_the_prompt():
    """A byte-level BPE marks a word's leading space: the reference's first token after "... from" is
    " sea" ("Ġsea"), not the "sea" that tokenizing the reference alone gives."""
    from vlmflow.testing.checkpoints import qwen2_tokenizer

    tok = qwen2_tokenizer()
    prompt = "The scene in the video changes from"
    ids = tok(prompt)["input_ids"]
    got = continuation_ids(tok, prompt, ids, "sea to grass", "s1")
    alone = tok("sea to grass", add_special_tokens=False)["input_ids"]
    assert tok.decode(got) == " sea to grass" and tok.decode(got[:1]).startswith(" ")
    assert got[0] != alone[0]
    # a prompt that ends in whitespace (an empty pre-fill after "assistant\n") takes no extra space
    nl = "<|im_start|>assistant\n"
    assert tok.decode(continuation_ids(tok, nl, tok(nl)["input_ids"], "sea", "s1")) == "sea"


def test_an_answer_that_merges_with_the_prompt_end_is_refused():
    tok = toy.build_tokenizer(synthetic.vocabulary())
    from tokenizers import AddedToken

    tok.add_tokens([AddedToken("from sea", normalized=False)])
    prompt = "The scene in the video changes from"
    with pytest.raises(ValueError, match="merges with the end of the prompt"):
        continuation_ids(tok, prompt, tok(prompt)["input_ids"], "sea to grass", "s1")

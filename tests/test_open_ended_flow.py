"""The open-ended generation flow (the paper's appendix figure on VCGBench): the VCGBench loader on
fixtures in its released layout, the prompt, the taggers, the anchors, the flow's inputs (prompt +
answer so far) against the dense-mask reference, the paper's sample selection, and the config
checks."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import REPO
from test_lvb_videomme import frame_indices, write_indexed_video

from vlmflow.data import synthetic, vcgbench
from vlmflow.data.formats import task_id
from vlmflow.jobs import Job
from vlmflow.knockout.engine import KnockoutEngine
from vlmflow.knockout.reference import dense_mask, forward_with_masks
from vlmflow.knockout.spec import PAPER_EXPERIMENTS, Condition, sweep
from vlmflow.open_ended import OpenAnswer
from vlmflow.open_ended_flow import find_anchors, token_spans, with_answer
from vlmflow.prompt import LLAVA_CHAT, VIDEO_CHATGPT_SYSTEM, build_open_prompt
from vlmflow.stages.frames import FramesJob, extract_task
from vlmflow.stats import all_anchor_rows, paper_selection
from vlmflow.tagging import LexiconTagger, SpacyTagger, Word, make_tagger
from vlmflow.testing.checkpoints import llama_tokenizer

FLOW = PAPER_EXPERIMENTS["open_ended_flow"]


# --- the VCGBench loader ----------------------------------------------------------------------------
def write_vcgbench(root):
    """VCGBench's layout: Benchmarking_QA/{temporal,consistency}_qa.json, Test_Videos/ with an .mp4,
    an .mkv and one record whose video is missing."""
    qa = root / "Benchmarking_QA"
    qa.mkdir(parents=True)
    write_indexed_video(root / "Test_Videos/v_abc.mp4", 20, fps=10)
    write_indexed_video(root / "Test_Videos/v_def.mkv", 40, fps=10)
    temporal = [
        {
            "Q": "What does the man do after opening the door?",
            "A": "He walks into the room.",
            "video_name": "v_abc",
        },
        {"Q": "What happens first?", "A": "A dog runs.", "video_name": "v_def"},
        {"Q": "And then?", "A": "Nothing.", "video_name": "v_gone"},
        {"Q": "No answer here", "video_name": "v_abc"},
    ]
    consistency = [
        {"Q1": "What is he holding?", "Q2": "What is in his hand?", "A": "A cup.", "video_name": "v_def"}
    ]
    (qa / "temporal_qa.json").write_text(json.dumps(temporal))
    (qa / "consistency_qa.json").write_text(json.dumps(consistency))
    return root


def test_vcgbench_records_load_with_their_videos_and_the_papers_task_ids(tmp_path):
    root = write_vcgbench(tmp_path / "VCGBench")
    qs, skipped = vcgbench.load_task(root, "temporal_qa")
    assert [q.sample_id for q in qs] == ["temporal_qa_0000", "temporal_qa_0001"]
    assert qs[0].question == "What does the man do after opening the door?"
    assert qs[0].candidates == ["He walks into the room."] and qs[0].answer_index == 0  # the reference
    assert qs[0].video.endswith("Test_Videos/v_abc.mp4") and qs[1].video.endswith("Test_Videos/v_def.mkv")
    reasons = {s["sample_id"]: s["reason"] for s in skipped}
    assert "'v_gone' not found" in reasons["temporal_qa_0002"]  # never another record's video
    assert "missing fields ['A']" in reasons["temporal_qa_0003"]
    pairs, _ = vcgbench.load_task(root, "consistency_qa")
    assert [(q.sample_id, q.question) for q in pairs] == [
        ("consistency_qa_0000_q1", "What is he holding?"),
        ("consistency_qa_0000_q2", "What is in his hand?"),
    ]
    # the paper's ids: consistency 0, generic 1, temporal 2 (generic_qa.json absent here)
    assert task_id("vcgbench", str(root), "temporal_qa") == 2
    assert task_id("vcgbench", str(root), "consistency_qa") == 0


def test_vcgbench_frames_are_the_segment_midpoints_of_the_whole_video(tmp_path):
    root = write_vcgbench(tmp_path / "VCGBench")
    out = tmp_path / "out"
    job = Job(
        FramesJob("vcgbench", str(root), 8, "segments"),
        output=dict(frames=out / "f.npz", questions=out / "q.parquet", skipped=out / "s.parquet"),
        task="temporal_qa",
    )
    extract_task(job)
    with np.load(out / "f.npz") as z:
        frames = z["frames"]
    # 20 frames: seg = 19/8, frame k = int(19/16 + round(19k/8)); 40 frames: seg = 39/8
    assert frame_indices(frames[0]) == [1, 3, 6, 8, 11, 13, 15, 18]
    assert frame_indices(frames[1]) == [2, 7, 12, 17, 22, 26, 31, 36]  # round(19.5) = 20: half to even
    skipped = pd.read_parquet(out / "s.parquet")
    assert set(skipped.sample_id) == {"temporal_qa_0002", "temporal_qa_0003"}


def test_the_vcgbench_prompt_has_video_chatgpts_system_the_bare_question_and_no_prefill():
    p = build_open_prompt(VIDEO_CHATGPT_SYSTEM, "What happens first?", "", "<image>", LLAVA_CHAT, label="")
    want = (
        "You are Video-ChatGPT, a large vision-language assistant. You are able to understand the video "
        "content that the user provides, and assist the user with a variety of tasks using natural "
        "language.Follow the instructions carefully and explain your answers in detail based on the "
        "provided video.\n USER: <image>\n USER: What happens first? ASSISTANT:"
    )
    assert p.text == want
    assert p.text[slice(*p.non_option_question)] == "What happens first?" == p.text[slice(*p.question)]
    assert p.text[slice(*p.placeholder)] == "<image>"


def test_the_synthetic_open_ended_set_is_written_in_vcgbenchs_layout(tmp_path):
    synthetic.write_open_ended(tmp_path, 2, 2, ["temporal_qa"])
    records = json.loads((tmp_path / "Benchmarking_QA/temporal_qa.json").read_text())
    assert [sorted(r) for r in records] == [["A", "Q", "video_name"]] * 2
    assert records[0]["A"].startswith("The order of the squares is ")
    qs, skipped = vcgbench.load_task(tmp_path, "temporal_qa")
    assert len(qs) == 2 and not skipped


# --- tagging and anchors --------------------------------------------------------------------------
def test_the_lexicon_tagger_tags_words_with_their_offsets():
    text = "The man opens the door, then walks in."
    words = LexiconTagger()(text)
    verbs = [text[w.start : w.end] for w in words if w.pos == "VERB"]
    assert verbs == ["opens", "walks"]
    assert [w.pos for w in words[:2]] == ["DET", "X"] or [w.pos for w in words[:2]] == ["DET", "NOUN"]
    with pytest.raises(ValueError, match="both VERB and NOUN"):
        LexiconTagger({"VERB": ["run"], "NOUN": ["run"]})
    with pytest.raises(ValueError, match="lexicon' or 'spacy'"):
        make_tagger("nltk")


def test_a_spacy_pipeline_tags_the_verbs(tmp_path):
    spacy = pytest.importorskip("spacy")
    nlp = spacy.blank("en")  # no model download: a rule-based pipeline saved and loaded by name (path)
    ruler = nlp.add_pipe("attribute_ruler")
    ruler.add([[{"LOWER": {"IN": ["opens", "walks"]}}]], {"POS": "VERB"})
    nlp.to_disk(tmp_path / "pipeline")
    words = SpacyTagger(str(tmp_path / "pipeline"))("He opens the door and walks in.")
    assert [(w.start, w.end) for w in words if w.pos == "VERB"] == [(3, 8), (22, 27)]
    with pytest.raises(OSError, match="python -m spacy download en_nonexistent_model"):
        SpacyTagger("en_nonexistent_model")


def test_an_anchor_is_the_first_token_of_its_word_however_it_is_split():
    tok = llama_tokenizer(corpus=["the man opens the door then walks into the room"] * 3 + ["walkingly"])
    text = "The man opens the door, then walks into the room"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    decoded, spans = token_spans(tok, ids)
    assert decoded == text and len(spans) == len(ids)
    assert "".join(decoded[a:b] for a, b in spans) == decoded  # the spans tile the answer
    anchors = find_anchors(decoded, spans, ids, LexiconTagger()(decoded), {"VERB"})
    assert [a.word for a in anchors] == ["opens", "walks"] and [a.n for a in anchors] == [1, 2]
    for a in anchors:
        a0, b0 = spans[a.token]
        start = decoded.index(a.word)
        assert a0 <= start < b0  # the token that holds the word's first character
        assert a.token_id == ids[a.token]
    # a word the tokenizer splits into pieces is found at its first piece, not at the space before it
    pieces = tok(" He shrinks", add_special_tokens=False)["input_ids"]
    text2, spans2 = token_spans(tok, pieces)
    first = next(k for k, (a, b) in enumerate(spans2) if text2[a:b].strip().startswith("s"))
    assert len(pieces) - first > 2  # "shrinks" is several pieces here
    found = find_anchors(text2, spans2, pieces, LexiconTagger()(text2), {"VERB"})
    assert [(a.word, a.token) for a in found] == [("shrinks", first)]


# --- the flow's inputs against the reference ------------------------------------------------------
def flow_sample(adapter, k: int, open_tokens: int):
    from conftest import synthetic_sample

    q, frames = synthetic_sample("action_sequence", 3)
    answer = OpenAnswer("The order of the squares is", q.answer)
    sample = adapter.prepare(q, adapter.video_features(adapter.pixel_values(frames)), answer)
    engine = KnockoutEngine(adapter)
    ids = engine.generate(sample, 6, set())  # six tokens, whatever the random model says
    return engine, sample, with_answer(adapter, sample, ids[:k], open_tokens, ids[k]), ids


@pytest.mark.parametrize("k, open_tokens", [(0, 1), (4, 0), (5, 1)])
def test_every_flow_knockout_on_prompt_plus_answer_equals_the_dense_reference(tiny_adapter, k, open_tokens):
    engine, sample, ext, ids = flow_sample(tiny_adapter, k, open_tokens)
    n0 = sample.layout.n_tokens
    assert ext.layout.n_tokens == n0 + k and ext.layout.last == n0 + k - 1
    assert ext.layout.response == (n0, n0 + max(0, k - 1 - open_tokens))
    # the answer so far continues the prompt: the engine's clean pass predicts the generated token
    clean = engine.clean(ext)
    assert int(clean.probs.argmax()) == ids[k]
    conditions = [Condition(b, w) for b in FLOW.blocks for w in sweep(tiny_adapter.n_layers, 3)]
    fast = engine.run(ext, conditions, clean)
    worst = 0.0
    for c, p in zip(conditions, fast):
        mask = dense_mask(ext.layout, c, tiny_adapter.n_heads, torch.float32)
        ref = forward_with_masks(tiny_adapter, ext, {l: mask for l in c.window.layers})
        worst = max(worst, float((p - ref).abs().max()))
    assert worst <= 1e-5, worst
    changed = {c.knockout.name for c, p in zip(conditions, fast) if (p - clean.probs).abs().max() > 1e-4}
    assert "Video -> Last" in changed
    # an empty response (the first answer tokens) blocks nothing
    assert ("Non-last response -> Last" in changed) == (k - 1 - open_tokens > 0)


def test_the_response_group_exists_only_in_the_flows_inputs(tiny_adapter):
    _, sample, ext, _ = flow_sample(tiny_adapter, 4, 1)
    with pytest.raises(KeyError, match="open-ended flow"):
        sample.layout.spans("response")
    assert list(ext.layout.indices("response")) == [sample.layout.n_tokens, sample.layout.n_tokens + 1]


# --- the paper's selection ------------------------------------------------------------------------
def test_the_papers_selection_keeps_all_anchor_samples_whose_block_mean_is_not_positive():
    rows = []
    # s1: all three anchors, block A mean -10 (kept), block B mean +5 (dropped); s2: anchors 1, 2 only
    for sid, anchors in (("s1", (1, 2, 3)), ("s2", (1, 2))):
        for n in anchors:
            for layer, (a, b) in enumerate([(-20, 10), (0, 0)], start=1):
                rows += [
                    dict(sample_id=sid, anchor=n, block="A", layer=layer, rel_change=a),
                    dict(sample_id=sid, anchor=n, block="B", layer=layer, rel_change=b),
                ]
    df = pd.DataFrame(rows)
    assert set(all_anchor_rows(df).sample_id) == {"s1"}
    picked = paper_selection(df)
    assert set(picked.sample_id) == {"s1"} and set(picked.block) == {"A"} and len(picked) == 3 * 2


# --- the config checks ----------------------------------------------------------------------------
def _config(change):
    from vlmflow.settings import read_config

    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    change(cfg)
    return read_config(cfg)


def test_the_flow_runs_on_open_ended_datasets_only():
    s = _config(lambda c: None)
    flow = s.datasets["synthetic-open"]
    assert flow.system_prompt is None and flow.question_label == "Question: "
    assert flow.open_ended_flow.anchor_pos == ("ADJ", "ADV") and flow.open_ended_flow.tagger == "lexicon"

    def mc_on_open(c):
        c["runs"][-1]["experiments"] = ["cross_frame"]

    def flow_on_mc(c):
        c["runs"][0]["experiments"].append("open_ended_flow")

    def figure_on_mc(c):
        c["figures"]["figS_open_ended"]["dataset"] = "synthetic"

    with pytest.raises(ValueError, match=r"open-ended dataset .*`experiments: \[open_ended_flow\]`"):
        _config(mc_on_open)
    with pytest.raises(ValueError, match="open_ended_flow runs on open-ended datasets"):
        _config(flow_on_mc)
    with pytest.raises(ValueError, match="figS_open_ended: 'synthetic' is a tvbench dataset"):
        _config(figure_on_mc)

    def response_on_mc(c):
        c["experiments"]["mine"] = {"blocks": [{"name": "x", "edges": [["response", "last"]]}]}
        c["runs"][0]["experiments"].append("mine")

    with pytest.raises(ValueError, match="uses the group `response`"):
        _config(response_on_mc)


def test_vcgbenchs_defaults_are_the_papers():
    def add(c):
        c["datasets"]["vcg"] = {"format": "vcgbench", "root": "data/VCGBench", "tasks": ["temporal_qa"]}

    d = _config(add).datasets["vcg"]
    assert d.system_prompt == "video_chatgpt" and d.question_label == ""
    f = d.open_ended_flow
    assert (f.tagger, f.spacy_model, f.anchor_pos, f.n_anchors, f.open_tokens) == (
        "spacy",
        "en_core_web_lg",
        ("VERB",),
        3,
        1,
    )
    assert isinstance(Word(0, 1, "X"), Word)


# --- the stage on the toy -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def toy_open_set(tmp_path_factory):
    """The toy's open-ended set (3 clips) with its frames extracted."""
    root = tmp_path_factory.mktemp("open")
    synthetic.write_open_ended(root / "set", 3, 2, ["temporal_qa"])
    out = root / "frames"
    files = dict(frames=out / "f.npz", questions=out / "q.parquet", skipped=out / "s.parquet")
    extract_task(
        Job(FramesJob("vcgbench", str(root / "set"), 8, "segments"), output=files, task="temporal_qa")
    )
    return files


def run_toy_flow(files, tmp_path, **flow):
    from vlmflow.models import toy
    from vlmflow.provenance import Stamp
    from vlmflow.settings import ModelLoad, OpenEndedFlow
    from vlmflow.stages.knockout import Sweep
    from vlmflow.stages.open_ended_flow import OpenFlowJob, run_flow

    settings = dict(tagger="lexicon", spacy_model="", anchor_pos=("ADJ", "ADV"), n_anchors=3, open_tokens=0)
    load = ModelLoad("llava_video", str(REPO / "models/toy-video"), "toy", "float32", "cpu")
    cfg = OpenFlowJob(
        load,
        FLOW,
        Sweep("center", 3, "correct"),
        None,
        "Question: ",
        "The order of the squares is",
        8,
        OpenEndedFlow(**{**settings, **flow}),
        16,
        None,
        Stamp("sdpa", "fast", 8, "segments", 0),
    )
    out = dict(table=tmp_path / "t.parquet", responses=tmp_path / "r.parquet")
    job = Job(cfg, input=files, output=out, dataset="synthetic-open", model="toy-video", task="temporal_qa")
    run_flow(toy.load(REPO / "models/toy-video"), job)
    return pd.read_parquet(out["table"]), pd.read_parquet(out["responses"])


def test_the_flow_stage_writes_rows_per_anchor_and_records_every_sample(toy_open_set, tmp_path):
    rows, answers = run_toy_flow(toy_open_set, tmp_path)
    assert len(answers) == 3 and answers.reason.eq("").all()
    assert answers.response.str.fullmatch(r"\w+ then \w+").all()  # the toy's answers: "red then green"
    assert set(rows.anchor) == {1, 2, 3} and set(rows.block) == {b.name for b in FLOW.blocks}
    assert len(rows) == 3 * 3 * len(FLOW.blocks) * 8  # samples x anchors x blocks x windows
    third = rows[rows.anchor == 3]
    assert third.anchor_word.isin(list(synthetic.COLOURS)).all() and third.anchor_position.eq(2).all()
    assert np.allclose(rows.rel_change, (rows.p_new - rows.p_base) / rows.p_base * 100)
    # the response of the first two anchors is empty: blocking it changes nothing
    early = rows[(rows.anchor < 3) & rows.block.str.contains("Non-last response")]
    assert early.rel_change.abs().max() < 1e-6


def test_a_sample_with_too_few_anchors_is_recorded_with_the_reason(toy_open_set, tmp_path):
    rows, answers = run_toy_flow(toy_open_set, tmp_path, anchor_pos=("VERB",))
    assert rows.empty and list(rows.columns)[:3] == ["dataset", "task", "model"]
    assert answers.reason.str.fullmatch(r"0 anchor words \(VERB\) in the answer, fewer than 3").all()

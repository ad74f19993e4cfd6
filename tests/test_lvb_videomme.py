"""LongVideoBench and Video-MME in their released formats: fixtures written as the releases lay them
out (lvb_val.json + videos/, the Video-MME parquet + data/<videoID>.{mp4,MP4,mkv}) with real videos
whose frames carry their own index, so that every sampled frame can be read back."""

import json
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from vlmflow.data import longvideobench, videomme
from vlmflow.data.formats import task_id, task_names
from vlmflow.data.frames import lvb_stride_indices, read_frames
from vlmflow.jobs import Job
from vlmflow.prompt import QuestionStyle, build_prompt
from vlmflow.stages.frames import FramesJob, extract_task

NTSC = Fraction(30000, 1001)  # 29.97 fps


def write_indexed_video(path, n_frames: int, fps=NTSC) -> None:
    """Frame i is flat grey-blue with R = (i % 32) * 8 and G = (i // 32) * 8 (lossless H.264)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="matroska" if path.suffix == ".mkv" else "mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = stream.height = 16
        stream.pix_fmt = "yuv444p"
        stream.options = {"crf": "0"}
        for i in range(n_frames):
            frame = np.zeros((16, 16, 3), np.uint8)
            frame[..., 0], frame[..., 1], frame[..., 2] = (i % 32) * 8, (i // 32) * 8, 128
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def frame_indices(frames: np.ndarray) -> list[int]:
    """The index each decoded frame carries."""
    r, g = frames[:, 8, 8, 0].astype(int), frames[:, 8, 8, 1].astype(int)
    return [int(round(a / 8)) + 32 * int(round(b / 8)) for a, b in zip(r, g)]


# --- LongVideoBench -------------------------------------------------------------------------------
def lvb_record(i, category, video, duration, answer=1):
    return dict(
        video_id=video.split(".")[0],
        id=f"{video.split('.')[0]}_{i}",
        question=f"What happens in scene {i}?",
        candidates=["a cat runs", "a dog sits", "a bird sings", "a car stops"],
        correct_choice=answer,
        question_category=category,
        duration=duration,
        video_path=video,
        subtitle_path=f"{video.split('.')[0]}_en.json",
        position=[1, 2],
        topic_category="NP-News-Programs",
        level="L2-Relation",
        starting_timestamp_for_subtitles=0,
    )


@pytest.fixture
def lvb_root(tmp_path):
    root = tmp_path / "LongVideoBench"
    write_indexed_video(root / "videos/long.mp4", 480)  # 16.0 s at 29.97 fps
    write_indexed_video(root / "videos/short.mp4", 100)
    records = [
        lvb_record(0, "O2E", "long.mp4", 12.0),  # the record's duration, not the file's 16 s
        lvb_record(1, "O2E", "long.mp4", 12.0, answer=7),  # no 8th option
        lvb_record(2, "SOS", "short.mp4", 3.0),
        lvb_record(3, "E2O", "long.mp4", 16.0),
    ]
    (root / "lvb_val.json").write_text(json.dumps(records))
    return root


def test_lvb_tasks_are_its_categories_in_alphabetical_order(lvb_root):
    assert task_names("longvideobench", str(lvb_root)) == ["E2O", "O2E", "SOS"]
    assert [task_id("longvideobench", str(lvb_root), t) for t in ("E2O", "O2E", "SOS")] == [0, 1, 2]


def test_lvb_records_become_questions_on_the_records_duration(lvb_root):
    questions, skipped = longvideobench.load_task(lvb_root, "O2E")
    (q,) = questions
    assert (q.sample_id, q.answer_index, q.answer) == ("long_0", 1, "a dog sits")
    assert q.video == str(lvb_root / "videos/long.mp4") and q.bounds == (0.0, 12.0)
    assert skipped == [
        dict(sample_id="long_1", task="O2E", reason="answer 7 is not an index into its 4 options")
    ]


def test_lvb_frame_rule_strides_from_frame_zero_at_the_files_own_fps(lvb_root):
    # k = min(8, int(12)) = 8 frames at a stride of int(12 * 29.97 / 8) = int(44.955) = 44
    # (45 if 29.97 fps were read as 30, 60 if the file's 16 s were used)
    want = [0, 44, 88, 132, 176, 220, 264, 308]
    assert lvb_stride_indices(480, float(NTSC), 8, (0.0, 12.0)) == want
    frames, times = read_frames(lvb_root / "videos/long.mp4", 8, (0.0, 12.0), True, "lvb_stride")
    assert frame_indices(frames) == want
    assert times == pytest.approx([i / float(NTSC) for i in want])
    # a 3 s record: int(3) = 3 frames at int(3 * 29.97 / 3) = 29, padded with the last
    assert lvb_stride_indices(100, float(NTSC), 8, (0.0, 3.0)) == [0, 29, 58, 58, 58, 58, 58, 58]


def test_lvb_padding_is_a_short_clip_recorded_with_its_reason(lvb_root, tmp_path):
    def extract(task, short_clips="skip"):
        out = tmp_path / f"{task}-{short_clips}"
        settings = FramesJob("longvideobench", str(lvb_root), 8, "lvb_stride", None, short_clips)
        files = dict(frames=out / "f.npz", questions=out / "q.parquet", skipped=out / "s.parquet")
        extract_task(Job(settings, output=files, task=task))
        return out

    out = extract("O2E")
    questions = pd.read_parquet(out / "q.parquet")
    assert list(questions.task_id) == [1]
    assert json.loads(questions.params[0])["option_style"] == {"default": "paren", "videollama3": "dot"}
    with pytest.raises(ValueError, match="no usable sample"):  # its one clip pads 3 frames to 8
        extract("SOS")
    out = extract("SOS", "repeat")
    with np.load(out / "f.npz") as z:
        assert frame_indices(z["frames"][0]) == [0, 29, 58, 58, 58, 58, 58, 58]


def test_lvb_options_are_lettered_as_each_familys_loader_writes_them(lvb_root):
    (q,), _ = longvideobench.load_task(lvb_root, "O2E")
    llava = build_prompt(
        "S", q.question, q.candidates, "<image>", style=QuestionStyle.of(q.params, "llava_video")
    )
    assert "\nOptions:\n(A) a cat runs\n(B) a dog sits\n(C) a bird sings\n(D) a car stops \n" in llava.text
    vl3 = build_prompt(
        "S", q.question, q.candidates, "<image>", style=QuestionStyle.of(q.params, "videollama3")
    )
    assert "\nOptions:\nA. a cat runs\nB. a dog sits\nC. a bird sings\nD. a car stops \n" in vl3.text
    assert (
        llava.text.endswith(" ASSISTANT:Best option:(")
        and vl3.text[slice(*vl3.options[1])] == "B. a dog sits"
    )


# --- Video-MME ------------------------------------------------------------------------------------
def videomme_row(qid, video, task, answer="B", question="How many people are there?\nCount them."):
    return dict(
        video_id="001",
        duration="short",
        domain="Knowledge",
        sub_category="Humanity & History",
        url=f"https://www.youtube.com/watch?v={video}",
        videoID=video,
        question_id=qid,
        task_type=task,
        question=question,
        options=["A. One.", "B. Two.", "C. Three.", "D. Four."],
        answer=answer,
    )


@pytest.fixture
def videomme_root(tmp_path):
    root = tmp_path / "Video-MME"
    write_indexed_video(root / "data/vidA.MP4", 40, fps=8)
    write_indexed_video(root / "data/vidB.mkv", 40, fps=8)
    rows = [
        videomme_row("001-1", "vidA", "Action Recognition", "C"),
        videomme_row("001-2", "vidMissing", "Spatial Perception"),  # its video was never downloaded
        videomme_row("001-3", "vidB", "Spatial Perception", "A"),
        videomme_row("001-4", "vidA", "Counting Problem"),
    ]
    (root / "videomme").mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(root / "videomme/test-00000-of-00001.parquet")
    return root


def test_videomme_tasks_are_its_task_types_in_alphabetical_order(videomme_root):
    names = task_names("videomme", str(videomme_root))
    assert names == ["Action Recognition", "Counting Problem", "Spatial Perception"]
    assert task_id("videomme", str(videomme_root), "Spatial Perception") == 2


def test_videomme_rows_become_questions_and_a_missing_video_is_skipped(videomme_root):
    questions, skipped = videomme.load_task(videomme_root, "Spatial Perception")
    (q,) = questions
    assert (q.sample_id, q.candidates, q.answer_index) == ("001-3", ["One.", "Two.", "Three.", "Four."], 0)
    assert q.video == str(videomme_root / "data/vidB.mkv")  # its own video, not the skipped row's neighbour
    (s,) = skipped
    assert s["sample_id"] == "001-2" and s["reason"].startswith("video not found: ")
    assert "data/vidMissing{.mp4,.MP4,.mkv}" in s["reason"]
    (a,), _ = videomme.load_task(videomme_root, "Action Recognition")
    assert a.video == str(videomme_root / "data/vidA.MP4") and a.answer == "Three."


def test_an_mkv_whose_header_counts_no_frames_is_counted_by_decoding(videomme_root):
    import av

    with av.open(str(videomme_root / "data/vidB.mkv")) as c:
        assert c.streams.video[0].frames == 0  # Matroska keeps no frame count
    frames = read_frames(videomme_root / "data/vidB.mkv", 8)
    # frames 0..39 in 8 segments of 39 / 8 = 4.875: int(2.4375 + round(4.875 k)), half to even
    assert frame_indices(frames) == [2, 7, 12, 17, 22, 26, 31, 36]


def test_videomme_prompt_keeps_its_options_and_line_breaks_and_prefills_best_option(videomme_root):
    from vlmflow.models.encoding import letter_ids
    from vlmflow.testing.checkpoints import llama_tokenizer

    (q,), _ = videomme.load_task(videomme_root, "Spatial Perception")
    p = build_prompt(
        "S", q.question, q.candidates, "<image>", style=QuestionStyle.of(q.params, "llava_video")
    )
    assert p.text == (
        "S\n USER: <image>\n USER: Question: How many people are there?\nCount them.\nOptions:\n"
        "A. One.\nB. Two.\nC. Three.\nD. Four. \nOnly give the best option. ASSISTANT:Best option:"
    )
    # a tokenizer that, like Llama's, has the pieces "▁A" .. "▁D" beside "A" .. "D"
    tok = llama_tokenizer(corpus=["Best option: A", "Best option: B", "Best option: C", "Best option: D"])
    assert {"▁A", "A"} <= set(tok.get_vocab())
    ids = tok(p.text)["input_ids"]
    letters = letter_ids(tok, 4, p.text, ids, q.sample_id)  # the letter as it follows "Best option:"
    assert tok.convert_ids_to_tokens(letters) == ["▁A", "▁B", "▁C", "▁D"]
    tvbench = build_prompt("S", q.question, q.candidates, "<image>")
    assert letter_ids(tok, 4, tvbench.text, tok(tvbench.text)["input_ids"]) == tok.convert_tokens_to_ids(
        list("ABCD")
    )


# --- the toy benchmark in both layouts, through the workflow --------------------------------------
def test_the_toy_benchmark_in_both_layouts_runs_fig3s_knockouts_through_their_loaders(tmp_path):
    import yaml
    from conftest import REPO, snakemake

    from vlmflow.data import synthetic

    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    keep = ("synthetic-lvb", "synthetic-videomme")
    cfg["datasets"] = {k: cfg["datasets"][k] for k in keep}
    for d in cfg["datasets"].values():
        d["generate"]["n_per_task"] = 3
    cfg["models"] = {"toy-video": {**cfg["models"]["toy-video"], "path": str(REPO / "models/toy-video")}}
    cfg["runs"] = [r for r in cfg["runs"] if r["dataset"] in keep]
    cfg["figures"] = {"curves": {k: v for k, v in cfg["figures"]["curves"].items() if v["dataset"] in keep}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    res = snakemake(tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    # LongVideoBench's own frame rule (one frame a second from frame 0) gives the toys' training frames
    lvb = json.loads((tmp_path / "results/datasets/synthetic-lvb/lvb_val.json").read_text())
    assert lvb[0]["duration"] == 8.0 and lvb[0]["question_category"] == "moving_direction"
    q = synthetic.sample_question("moving_direction", np.random.default_rng([3, 0]))
    with np.load(tmp_path / "results/synthetic-lvb/frames/moving_direction.npz") as z:
        first = z["frames"][0]
    want = synthetic.render(q, synthetic.sampled_indices(q))
    assert np.abs(first.astype(int) - want.astype(int)).max() <= 2
    vmme = pd.read_parquet(
        tmp_path / "results/datasets/synthetic-videomme/videomme/test-00000-of-00001.parquet"
    )
    assert vmme.options.iloc[0][0].startswith("A. ") and set(vmme.task_type) == {
        "moving_direction",
        "object_count",
    }
    for dataset, tasks in (("synthetic-lvb", 2), ("synthetic-videomme", 2)):
        rows = pd.read_parquet(tmp_path / f"results/{dataset}/toy-video/knockout/vql_to_ql/center-w3.parquet")
        base = pd.concat(
            pd.read_parquet(p) for p in (tmp_path / f"results/{dataset}/toy-video/baseline").glob("*.parquet")
        )
        assert len(base) == 3 * tasks and set(rows.sample_id) == set(base[base.correct_base].sample_id)
        assert set(rows.frame_sampling) == {"lvb_stride" if dataset == "synthetic-lvb" else "segments"}
    for name in ("lvb_vql_to_ql", "videomme_vql_to_ql"):
        assert (tmp_path / f"figures/{name}.png").stat().st_size > 0
    acc = pd.read_csv(tmp_path / "figures/accuracy.csv")
    assert set(acc.dataset) == set(keep)

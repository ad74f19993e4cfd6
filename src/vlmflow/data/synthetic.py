"""Synthetic temporal VideoQA benchmark: the paper's five analysed TVBench tasks as toy videos.

Every task asks about something no single frame shows: a direction of motion, the order of two
events, a change of scene, a change of size or presence, a number of flashes. Options carry
content ("red then blue") that must be matched against the video, so the answer has to travel
through the option tokens, and option order (hence the letter) is random.

`sample_question` draws one question (parameters + text); `render` draws its frames at any list of
frame indices, so training renders exactly the frames the evaluation sampler would pick.
`write_benchmark` writes the TVBench layout (json/<task>.json + video/<task>/*.mp4) with PyAV;
`write_open_ended` the toy's open-ended set in VCGBench's layout, for the open-ended flow;
`write_longvideobench` and `write_videomme` the same questions in those benchmarks' released layouts.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from vlmflow.data import longvideobench, tvbench, vcgbench, videomme
from vlmflow.data.frames import segment_midpoints
from vlmflow.io import atomic_path
from vlmflow.question import Question

SIZE = 48  # frame height = width in pixels
FPS = 8
N_VIDEO_FRAMES = 16  # frames of an unbounded clip (2 s)
N_BOUNDED_FRAMES = 24  # action_sequence videos: 3 s with the clip in [0.5 s, 2.5 s]
CLIP_BOUNDS = (0.5, 2.5)

COLOURS = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 80, 240),
    "yellow": (240, 220, 40),
    "white": (245, 245, 245),
}
SCENES = {  # background colours for scene transitions
    "grass": (30, 110, 40),
    "sea": (20, 60, 150),
    "desert": (170, 130, 60),
    "night": (35, 20, 70),
}
BACKGROUND = (16, 16, 16)
NUMBERS = ["one", "two", "three", "four"]
DIRECTIONS = ["left", "right", "up", "down"]
CHANGES = ["grow", "shrink", "appear", "disappear"]

# Task names in the paper's figure order; ids are the alphabetical order as in TVBench.
TASKS = ["action_antonym", "action_sequence", "scene_transition", "moving_direction", "object_count"]
STATIC_TASKS = ["static_colour", "static_position"]  # image-stage training only
CORNERS = ["top left", "top right", "bottom left", "bottom right"]
TASK_TITLES = {
    "action_antonym": "Action Antonym",
    "action_sequence": "Action Sequence",
    "scene_transition": "Scene Transition",
    "moving_direction": "Moving Direction",
    "object_count": "Object Count",
}


def _question(
    task: str,
    text: str,
    options: list[str],
    correct: str,
    params: dict,
    n_frames: int = N_VIDEO_FRAMES,
    bounds: tuple[float, float] | None = None,
) -> Question:
    """A generated question: `params` say how to render it (with its video's length in frames)."""
    return Question(
        "synthetic",
        task,
        "",
        text,
        options,
        options.index(correct),
        bounds=bounds,
        params={**params, "n_frames": n_frames},
    )


def sampled_indices(q: Question, n: int = 8) -> list[int]:
    """Indices the evaluation sampler picks from this generated question's video."""
    return segment_midpoints(q.params["n_frames"], FPS, n, q.bounds)


def _shuffle(rng: np.random.Generator, correct: str, wrong: list[str]) -> list[str]:
    options = [correct, *wrong]
    return [options[i] for i in rng.permutation(len(options))]


def _distinct(rng: np.random.Generator, names, k: int) -> list[str]:
    return [str(x) for x in rng.choice(list(names), size=k, replace=False)]


def sample_question(task: str, rng: np.random.Generator) -> Question:
    """Draw one question of `task` with its render parameters."""
    colour = _distinct(rng, COLOURS, 1)[0]
    if task == "moving_direction":
        direction = DIRECTIONS[rng.integers(4)]
        dist = int(rng.integers(20, 29))
        size = 10
        lo, hi = 1, SIZE - size - 1
        x0, y0 = rng.integers(lo, hi + 1, size=2)
        dx, dy = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}[direction]
        # keep the whole path inside the frame
        x0 = int(np.clip(x0, lo + max(0, -dx) * dist, hi - max(0, dx) * dist))
        y0 = int(np.clip(y0, lo + max(0, -dy) * dist, hi - max(0, dy) * dist))
        params = dict(colour=colour, x0=x0, y0=y0, dx=dx * dist, dy=dy * dist, size=size)
        wrong = [d for d in DIRECTIONS if d != direction]
        q = f"Which way does the {colour} square move?"
        return _question(task, q, _shuffle(rng, direction, wrong), direction, params)
    if task == "action_sequence":
        c1, c2, c3, c4 = _distinct(rng, COLOURS, 4)
        pos = _two_positions(rng)
        switch = float(rng.uniform(0.4, 0.6))
        params = dict(first=c1, second=c2, pos=pos, switch=switch, distractor=c3)
        correct = f"{c1} then {c2}"
        wrong = [f"{c2} then {c1}", f"{c1} then {c4}", f"{c4} then {c2}"]
        q = "In which order do the squares appear?"
        return _question(
            task, q, _shuffle(rng, correct, wrong), correct, params, N_BOUNDED_FRAMES, CLIP_BOUNDS
        )
    if task == "scene_transition":
        s1, s2, s3 = _distinct(rng, SCENES, 3)
        params = dict(first=s1, second=s2, switch=float(rng.uniform(0.35, 0.65)), colour=colour)
        correct = f"from {s1} to {s2}"
        wrong = [f"from {s2} to {s1}", f"from {s1} to {s3}", f"from {s3} to {s2}"]
        q = "How does the scene change?"
        return _question(task, q, _shuffle(rng, correct, wrong), correct, params)
    if task == "action_antonym":
        change = CHANGES[rng.integers(4)]
        small, big = int(rng.integers(6, 11)), int(rng.integers(18, 25))
        x, y = rng.integers(2, SIZE - big - 2, size=2)
        params = dict(
            colour=colour,
            change=change,
            small=small,
            big=big,
            x=int(x),
            y=int(y),
            switch=float(rng.uniform(0.35, 0.65)),
        )
        wrong = [c for c in CHANGES if c != change]
        q = f"What does the {colour} square do?"
        return _question(task, q, _shuffle(rng, change, wrong), change, params)
    if task == "object_count":
        count = int(rng.integers(1, 5))
        # flashes land on non-adjacent sampled frames, so each one is seen on its own
        slots = _non_adjacent(rng, 8, count)
        x, y = rng.integers(2, SIZE - 14, size=2)
        params = dict(colour=colour, slots=slots, x=int(x), y=int(y), size=12)
        correct = NUMBERS[count - 1]
        wrong = [n for n in NUMBERS if n != correct]
        q = f"How many times does the {colour} square flash?"
        return _question(task, q, _shuffle(rng, correct, wrong), correct, params)
    if task == "static_colour":
        x, y = rng.integers(2, SIZE - 18, size=2)
        params = dict(colour=colour, x=int(x), y=int(y), size=16)
        wrong = _distinct(rng, [c for c in COLOURS if c != colour], 3)
        q = "What colour is the square?"
        return _question(task, q, _shuffle(rng, colour, wrong), colour, params)
    if task == "static_position":
        corner = CORNERS[rng.integers(4)]
        params = dict(colour=colour, corner=corner, size=14)
        wrong = [c for c in CORNERS if c != corner]
        q = f"Where is the {colour} square?"
        return _question(task, q, _shuffle(rng, corner, wrong), corner, params)
    raise ValueError(f"unknown synthetic task {task!r}; known: {TASKS + STATIC_TASKS}")


def _two_positions(rng: np.random.Generator) -> list[list[int]]:
    """Top-left corners of two 14-px squares in different halves of the frame."""
    a = [int(rng.integers(2, 10)), int(rng.integers(2, 32))]
    b = [int(rng.integers(26, 32)), int(rng.integers(2, 32))]
    return [a, b] if rng.random() < 0.5 else [b, a]


def _non_adjacent(rng: np.random.Generator, n: int, k: int) -> list[int]:
    while True:
        slots = sorted(int(s) for s in rng.choice(n, size=k, replace=False))
        if all(b - a > 1 for a, b in zip(slots, slots[1:])):
            return slots


def render(q: Question, indices: list[int]) -> np.ndarray:
    """Frames of `q` at the given video frame indices -> uint8 [len(indices), SIZE, SIZE, 3]."""
    start, end = _clip_range(q)
    sampled = sampled_indices(q)
    out = np.empty((len(indices), SIZE, SIZE, 3), np.uint8)
    for i, idx in enumerate(indices):
        u = (idx - start) / max(end - start, 1)  # 0..1 inside the clip
        out[i] = _frame(q, u, idx, sampled, inside=start <= idx <= end)
    return out


def _clip_range(q: Question) -> tuple[int, int]:
    if q.bounds is None:
        return 0, q.params["n_frames"] - 1
    return round(q.bounds[0] * FPS), min(round(q.bounds[1] * FPS), q.params["n_frames"] - 1)


def _square(img: np.ndarray, x: int, y: int, size: int, colour: str) -> None:
    img[y : y + size, x : x + size] = COLOURS[colour]


def _frame(q: Question, u: float, idx: int, sampled: list[int], inside: bool) -> np.ndarray:
    p = q.params
    img = np.empty((SIZE, SIZE, 3), np.uint8)
    img[:] = BACKGROUND
    if q.task == "moving_direction":
        _square(img, round(p["x0"] + u * p["dx"]), round(p["y0"] + u * p["dy"]), p["size"], p["colour"])
    elif q.task == "action_sequence":
        if not inside:  # outside the clip bounds a distractor flashes: a sampler ignoring them is wrong
            _square(img, 17, 17, 14, p["distractor"])
        else:
            which = 0 if u < p["switch"] else 1
            x, y = p["pos"][which]
            _square(img, x, y, 14, p["first"] if which == 0 else p["second"])
    elif q.task == "scene_transition":
        img[:] = SCENES[p["first"] if u < p["switch"] else p["second"]]
    elif q.task == "action_antonym":
        late = u >= p["switch"]
        ch = p["change"]
        if ch in ("grow", "shrink"):
            frac = u if ch == "grow" else 1 - u
            size = round(p["small"] + frac * (p["big"] - p["small"]))
            _square(img, p["x"], p["y"], size, p["colour"])
        elif (ch == "appear") == late:
            _square(img, p["x"], p["y"], 14, p["colour"])
    elif q.task == "object_count":
        # a flash is "on" exactly at the sampled frames listed in slots
        if idx in sampled and sampled.index(idx) in p["slots"]:
            _square(img, p["x"], p["y"], p["size"], p["colour"])
    elif q.task == "static_colour":
        _square(img, p["x"], p["y"], p["size"], p["colour"])
    elif q.task == "static_position":
        s = p["size"]
        x = 4 if "left" in p["corner"] else SIZE - s - 4
        y = 4 if "top" in p["corner"] else SIZE - s - 4
        _square(img, x, y, s, p["colour"])
    return img


def vocabulary(answer_prompts: list[str] = ()) -> list[str]:
    """Every word the synthetic questions and options can use, and the words of the open-ended answer
    prompts (their `{fields}` left out)."""
    words = {w for p in answer_prompts for w in _words(re.sub(r"\{\w+\}", " ", p))}
    words |= set(COLOURS) | set(SCENES) | set(NUMBERS) | set(DIRECTIONS) | set(CHANGES)
    words |= {w for c in CORNERS for w in c.split()}
    rng = np.random.default_rng(0)
    for task in TASKS + STATIC_TASKS:
        for _ in range(50):
            q = sample_question(task, rng)
            for text in [q.question, *q.candidates]:
                words.update(_words(text))
    return sorted(words)


def _words(text: str) -> list[str]:
    return [w for w in text.replace("?", " ").split() if w]


def write_video(path: Path, frames: np.ndarray, fps: int = FPS) -> None:
    """Encode uint8 RGB frames [n, H, W, 3] as an H.264 mp4 (lossless, 4:4:4) with PyAV."""
    import av

    with atomic_path(path) as tmp:
        with av.open(str(tmp), "w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=fps)
            stream.width, stream.height = frames.shape[2], frames.shape[1]
            stream.pix_fmt = "yuv444p"
            stream.options = {"crf": "0", "preset": "medium"}
            for frame in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)


def _drawn(tasks: list[str], n_per_task: int, seed: int, draw=None):
    """(task, name, question) of every question the writers write: per task, `n_per_task` drawn from
    its own seeded generator ([seed, task index]), of the task itself or of the task `draw`."""
    for t_i, task in enumerate(tasks):
        rng = np.random.default_rng([seed, t_i])
        for i in range(n_per_task):
            yield task, f"{task}_{i:04d}", sample_question(draw or task, rng)


def write_benchmark(root: Path, n_per_task: int, seed: int, tasks: list[str] = TASKS) -> None:
    """Write a TVBench-format benchmark: json/<task>.json and video/<task>/<id>.mp4."""
    root = Path(root)
    entries = {task: [] for task in tasks}
    for task, stem, q in _drawn(tasks, n_per_task, seed):
        name = f"{stem}.mp4"
        write_video(root / "video" / task / name, render(q, list(range(q.params["n_frames"]))))
        entry = {"video": name, "question": q.question, "candidates": q.candidates, "answer": q.answer}
        if "colour" in q.params:  # the object's name, for answer prompts ("The {colour} square ...")
            entry["colour"] = q.params["colour"]
        if q.bounds is not None:
            entry["start"], entry["end"] = q.bounds
        entries[task].append(entry)
    for task, found in entries.items():
        with atomic_path(tvbench.annotation_path(root, task)) as tmp:
            tmp.write_text(json.dumps(found, indent=1))


# the toy's open-ended set: Action Sequence clips, whose answer ("red then green") gives the toy's
# lexicon three anchors (two colours and "then"); VCGBench's records hold a sentence as the answer
OPEN_ENDED_TASK = "action_sequence"
OPEN_ENDED_ANSWER = "The order of the squares is {}"


def write_open_ended(root: Path, n_per_task: int, seed: int, tasks: list[str]) -> None:
    """Write the toy's open-ended set in VCGBench's layout: Benchmarking_QA/<task>.json =
    [{Q, A, video_name}] and Test_Videos/<video_name>.mp4. Each video is the clip of an Action
    Sequence question alone (its frames from the clip's first to its last), so that the whole-video
    segment mid-points VCGBench's loader samples are the frames the toys were trained on."""
    root = Path(root)
    entries = {task: [] for task in tasks}
    for task, name, q in _drawn(tasks, n_per_task, seed, OPEN_ENDED_TASK):
        start, end = _clip_range(q)
        write_video(root / "Test_Videos" / f"{name}.mp4", render(q, list(range(start, end + 1))))
        entries[task].append({"Q": q.question, "A": OPEN_ENDED_ANSWER.format(q.answer), "video_name": name})
    for task, found in entries.items():
        with atomic_path(vcgbench.annotation_path(root, task)) as tmp:
            tmp.write_text(json.dumps(found, indent=1))


LVB_SECONDS = 8  # LongVideoBench's rule samples min(8, int(duration)) frames: an 8-second video


def _unbounded(tasks: list[str]) -> None:
    """LongVideoBench and Video-MME records have no clip bounds: refuse the bounded task."""
    if "action_sequence" in tasks:
        raise ValueError(
            "action_sequence is a bounded clip; LongVideoBench and Video-MME records have no clip bounds: "
            "choose other tasks for these formats"
        )


def write_longvideobench(root: Path, n_per_task: int, seed: int, tasks: list[str]) -> None:
    """The toy benchmark in LongVideoBench's released layout: lvb_val.json (records with id, question,
    candidates, correct_choice, question_category = the task, duration, video_path, ...) and
    videos/<id>.mp4. Each video lasts 8 s at 8 fps and holds each of the question's 8 evaluation
    frames for one second, so LongVideoBench's own frame rule (one frame per second from frame 0)
    samples exactly the frames the toys were trained on."""
    root, records = Path(root), []
    _unbounded(tasks)
    for task, name, q in _drawn(tasks, n_per_task, seed):
        frames = np.repeat(render(q, sampled_indices(q)), FPS * LVB_SECONDS // 8, axis=0)
        write_video(root / "videos" / f"{name}.mp4", frames)
        records.append(
            dict(
                video_id=name,
                id=f"{name}_0",
                question=q.question,
                candidates=q.candidates,
                correct_choice=q.answer_index,
                question_category=task,
                duration=float(LVB_SECONDS),
                video_path=f"{name}.mp4",
                subtitle_path=f"{name}_en.json",
            )
        )
    with atomic_path(longvideobench.annotation_path(root, "")) as tmp:
        tmp.write_text(json.dumps(records, indent=1))


def write_videomme(root: Path, n_per_task: int, seed: int, tasks: list[str]) -> None:
    """The toy benchmark in Video-MME's released layout: videomme/test-00000-of-00001.parquet (one row
    per question: videoID, question_id, task_type = the task, question, options "A. ...", answer a
    letter, ...) and data/<videoID>.mp4, each the toy's whole clip (the paper's segment mid-points)."""
    import pandas as pd

    from vlmflow.io import write_parquet
    from vlmflow.prompt import LETTERS

    root, rows = Path(root), []
    _unbounded(tasks)
    for task, name, q in _drawn(tasks, n_per_task, seed):
        write_video(root / "data" / f"{name}.mp4", render(q, list(range(q.params["n_frames"]))))
        rows.append(
            dict(
                video_id=f"{tasks.index(task):03d}",
                duration="short",
                domain="Synthetic",
                sub_category="Toy",
                url="",
                videoID=name,
                question_id=f"{name}-1",
                task_type=task,
                question=q.question,
                options=[f"{letter}. {c}" for letter, c in zip(LETTERS, q.candidates)],
                answer=LETTERS[q.answer_index],
            )
        )
    write_parquet(pd.DataFrame(rows), videomme.annotation_path(root, ""))

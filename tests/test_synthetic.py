import json

import numpy as np
import pytest

from vlmflow.data import synthetic
from vlmflow.data.tvbench import load_task

TEMPORAL_OPPOSITES = {
    "moving_direction": {"left": "right", "right": "left", "up": "down", "down": "up"},
    "action_antonym": {"grow": "shrink", "shrink": "grow", "appear": "disappear", "disappear": "appear"},
}


@pytest.mark.parametrize("task", synthetic.TASKS + synthetic.STATIC_TASKS)
def test_questions_are_deterministic_and_well_formed(task):
    a = synthetic.sample_question(task, np.random.default_rng(3))
    b = synthetic.sample_question(task, np.random.default_rng(3))
    assert a == b
    assert a.answer in a.candidates and len(set(a.candidates)) == len(a.candidates) == 4
    frames = synthetic.render(a, synthetic.sampled_indices(a))
    assert frames.shape == (8, synthetic.SIZE, synthetic.SIZE, 3) and frames.dtype == np.uint8


def test_letters_are_randomised():
    rng = np.random.default_rng(0)
    positions = {synthetic.sample_question("moving_direction", rng).candidates.index(
        synthetic.sample_question("moving_direction", rng).answer) for _ in range(40)}
    assert positions == {0, 1, 2, 3}


@pytest.mark.parametrize("task", ["moving_direction", "action_antonym", "action_sequence", "scene_transition"])
def test_frame_order_decides_the_answer(task):
    """The same set of frames in reverse order has another answer: no frame alone, nor the bag of
    frames, determines it."""
    rng = np.random.default_rng(1)
    for _ in range(20):
        q = synthetic.sample_question(task, rng)
        fwd = synthetic.render(q, synthetic.sampled_indices(q))
        rev = fwd[::-1]
        if task in TEMPORAL_OPPOSITES:
            other = TEMPORAL_OPPOSITES[task][q.answer]
        else:
            a, b = (q.answer.split(" then ") if task == "action_sequence" else q.answer[5:].split(" to "))
            other = f"{b} then {a}" if task == "action_sequence" else f"from {b} to {a}"
        assert other != q.answer and other in q.candidates
        assert sorted(map(bytes, fwd)) == sorted(map(bytes, rev))  # same frames


def test_benchmark_in_tvbench_format(tmp_path):
    synthetic.write_benchmark(tmp_path, 2, seed=5, tasks=["action_sequence", "object_count"])
    entries = json.loads((tmp_path / "json" / "action_sequence.json").read_text())
    assert set(entries[0]) == {"video", "question", "candidates", "answer", "start", "end"}
    qs, skipped = load_task(tmp_path, "object_count")
    assert len(qs) == 2 and not skipped and qs[0].bounds is None
    assert (tmp_path / "video" / "object_count" / entries[0]["video"].replace("action_sequence", "object_count")).is_file()

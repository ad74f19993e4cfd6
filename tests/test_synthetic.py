import json
from collections import Counter

import numpy as np
import pytest

from vlmflow.data import synthetic
from vlmflow.data.tvbench import load_task


@pytest.mark.parametrize("task", synthetic.TASKS + synthetic.STATIC_TASKS)
def test_questions_are_deterministic_and_well_formed(task):
    a = synthetic.sample_question(task, np.random.default_rng(3))
    b = synthetic.sample_question(task, np.random.default_rng(3))
    assert a == b
    assert a.answer in a.candidates and len(set(a.candidates)) == len(a.candidates) == 4
    frames = synthetic.render(a, synthetic.sampled_indices(a))
    assert frames.shape == (8, synthetic.SIZE, synthetic.SIZE, 3) and frames.dtype == np.uint8


@pytest.mark.parametrize("task", synthetic.TASKS + synthetic.STATIC_TASKS)
def test_letters_are_random_and_independent_of_the_answer(task):
    """The correct option's position (hence its letter) is uniform over 0..3 overall and for every
    answer on its own, so neither a fixed letter nor a letter tied to an answer wins."""
    rng = np.random.default_rng(0)
    n = 400
    index, by_answer = Counter(), {}
    for _ in range(n):
        q = synthetic.sample_question(task, rng)
        assert q.candidates.count(q.answer) == 1 and len(q.candidates) == 4
        index[q.answer_index] += 1
        by_answer.setdefault(q.answer, Counter())[q.answer_index] += 1
    for i in range(4):
        assert 0.15 * n <= index[i] <= 0.35 * n, (i, index)
    # answers drawn from four labels (direction, change, count, corner): about 100 draws each
    for answer, counts in by_answer.items():
        m = sum(counts.values())
        if m >= 60:
            for i in range(4):
                assert 0.10 * m <= counts[i] <= 0.40 * m, (answer, counts)
    if task in ("moving_direction", "action_antonym", "object_count", "static_position"):
        assert len(by_answer) == 4 and all(sum(c.values()) >= 60 for c in by_answer.values())


# Frame-reading oracles: each decides a temporal question from the pixels of the first and last
# sampled frames only, never from the generator's labels or render parameters.


def _foreground(frame: np.ndarray) -> np.ndarray:
    """Pixels that differ from the plain background."""
    return np.any(frame != np.array(synthetic.BACKGROUND, np.uint8), axis=-1)


def _nearest(rgb, palette: dict, tol: float = 20.0) -> str:
    name, dist = min(
        ((k, float(np.linalg.norm(np.asarray(rgb, float) - v))) for k, v in palette.items()),
        key=lambda kv: kv[1],
    )
    assert dist <= tol, f"colour {np.round(rgb).astype(int).tolist()} is none of {sorted(palette)}"
    return name


def _object(frame: np.ndarray) -> np.ndarray:
    mask = _foreground(frame)
    assert mask.any(), "no object visible in the frame"
    return mask


def _centroid(frame: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(_object(frame))
    return np.array([xs.mean(), ys.mean()])


def _square_colour(frame: np.ndarray) -> str:
    mask = _object(frame)
    return _nearest(frame[mask].mean(0), synthetic.COLOURS)


def oracle_moving_direction(frames: np.ndarray) -> str:
    dx, dy = _centroid(frames[-1]) - _centroid(frames[0])
    assert max(abs(dx), abs(dy)) >= 5, "the object does not move"
    if abs(dx) >= abs(dy):
        return "right" if dx > 0 else "left"
    return "down" if dy > 0 else "up"


def oracle_action_sequence(frames: np.ndarray) -> str:
    return f"{_square_colour(frames[0])} then {_square_colour(frames[-1])}"


def oracle_scene_transition(frames: np.ndarray) -> str:
    first, last = (_nearest(np.median(f.reshape(-1, 3), 0), synthetic.SCENES) for f in frames[[0, -1]])
    return f"from {first} to {last}"


def oracle_action_antonym(frames: np.ndarray) -> str:
    a, b = _foreground(frames[0]).sum(), _foreground(frames[-1]).sum()
    assert a or b, "no object visible in the first or last frame"
    if not a:
        return "appear"
    if not b:
        return "disappear"
    assert a != b, "the object neither changes size nor presence"
    return "grow" if b > a else "shrink"


def oracle_object_count(frames: np.ndarray) -> int:
    """Number of flashes: runs of consecutive frames showing the square."""
    on = [bool(_foreground(f).any()) for f in frames]
    return sum(1 for k, v in enumerate(on) if v and (k == 0 or not on[k - 1]))


ORACLES = {
    "moving_direction": oracle_moving_direction,
    "action_sequence": oracle_action_sequence,
    "scene_transition": oracle_scene_transition,
    "action_antonym": oracle_action_antonym,
}


@pytest.mark.parametrize("task", sorted(ORACLES))
def test_frame_order_decides_the_answer(task):
    """Read from the frames alone, the forward clip gives the generator's answer and the same frames
    reversed give another of the candidates: no frame alone, nor the bag of frames, decides the
    answer. The generator always offers the reversed event (the opposite direction or change, the
    swapped order of colours or scenes) among the options, so the reversed answer is always there."""
    oracle = ORACLES[task]
    rng = np.random.default_rng(1)
    for _ in range(50):
        q = synthetic.sample_question(task, rng)
        fwd = synthetic.render(q, synthetic.sampled_indices(q))
        assert oracle(fwd) == q.answer  # the oracle reads these frames as the generator meant
        rev = oracle(fwd[::-1].copy())
        assert rev != q.answer and rev in q.candidates


@pytest.mark.parametrize("task", sorted(ORACLES))
def test_oracles_refuse_blank_frames(task):
    blank = np.empty((8, synthetic.SIZE, synthetic.SIZE, 3), np.uint8)
    blank[:] = synthetic.BACKGROUND
    with pytest.raises(AssertionError):
        ORACLES[task](blank)


def test_flash_count_survives_reversal():
    """Object count is order-invariant: the flashes counted in the frames match the answer both ways."""
    rng = np.random.default_rng(1)
    for _ in range(50):
        q = synthetic.sample_question("object_count", rng)
        fwd = synthetic.render(q, synthetic.sampled_indices(q))
        n = oracle_object_count(fwd)
        assert n >= 1 and synthetic.NUMBERS[n - 1] == q.answer
        assert oracle_object_count(fwd[::-1]) == n


def test_benchmark_in_tvbench_format(tmp_path):
    synthetic.write_benchmark(tmp_path, 2, seed=5, tasks=["action_sequence", "object_count"])
    entries = json.loads((tmp_path / "json" / "action_sequence.json").read_text())
    assert set(entries[0]) == {"video", "question", "candidates", "answer", "start", "end"}
    qs, skipped = load_task(tmp_path, "object_count")
    assert len(qs) == 2 and not skipped and qs[0].bounds is None
    assert (
        tmp_path / "video" / "object_count" / entries[0]["video"].replace("action_sequence", "object_count")
    ).is_file()

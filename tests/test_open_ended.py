import pytest

from vlmflow.open_ended import exact_match, open_answer
from vlmflow.question import Question


def q(task, answer, params=None):
    return Question("synthetic", task, "s1", "How?", [answer, "other"], 0, params=params or {})


def test_reference_drops_the_word_the_prompt_ends_with():
    p = {
        "scene_transition": "The scene in the video changes from",
        "moving_direction": "The {colour} square moves to the",
    }
    assert open_answer(q("scene_transition", "from sea to grass"), p).reference == "sea to grass"
    oa = open_answer(q("moving_direction", "left", {"colour": "red"}), p)
    assert oa.prompt == "The red square moves to the" and oa.reference == "left"
    # a one-word answer is never emptied
    assert open_answer(q("scene_transition", "from"), p).reference == "from"


def test_missing_prompt_or_field_names_the_fix():
    with pytest.raises(KeyError, match="answer_prompts"):
        open_answer(q("object_count", "two"), {"scene_transition": "x"})
    with pytest.raises(KeyError, match="colour"):
        open_answer(q("moving_direction", "left"), {"moving_direction": "The {colour} square moves"})


def test_exact_match_ignores_case_and_punctuation_only():
    assert exact_match(" Sea to grass.", "sea to grass")
    assert not exact_match("sea to", "sea to grass")

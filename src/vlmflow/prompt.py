"""The paper's multiple-choice prompt (MVBench style), with the character span of every region.

    {system}\\n USER: <image>\\n USER: Question: {q}\\nOptions:\\n(A) {c0}\\n(B) {c1} \\nOnly give the
    best option. ASSISTANT:Best option:(

The answer is read from the next token after "Best option:(" (the option letter).
"""

from __future__ import annotations

from dataclasses import dataclass

LETTERS = "ABCDEFGH"
MVBENCH_SYSTEM = (
    "Carefully watch the video and pay attention to the cause and sequence of events, the detail and "
    "movement of objects, and the action and pose of persons. Based on your observations, select the "
    "best option that accurately addresses the question."
)
POST_QUESTION = " \nOnly give the best option."
ANSWER_PREFIX = "Best option:("


def is_letter(token: str, letter: str) -> bool:
    """Does a decoded answer token name this option letter (case and spaces ignored)?"""
    return token.strip().lower() == letter.lower()


@dataclass(frozen=True)
class Prompt:
    """Prompt text and the character spans [start, end) of its regions."""

    text: str
    placeholder: tuple[int, int]  # the video placeholder
    question: tuple[int, int]  # "Question: ... (D) last option"
    non_option_question: tuple[int, int]  # the raw question text
    options: tuple[tuple[int, int], ...]  # "(X) option text", in display order


def _question_turn(
    system: str, question: str, placeholder: str
) -> tuple[str, tuple[int, int], int, tuple[int, int]]:
    """System prompt, the video's own user turn and "Question: {q}" -> (text, video span, start of the
    question region, span of the raw question)."""
    head = f"{system}\n USER: "
    video = (len(head), len(head) + len(placeholder))
    text = head + placeholder + "\n USER: "
    q_start = len(text)
    text += "Question: "
    nq = (len(text), len(text) + len(question))
    return text + question, video, q_start, nq


def build_prompt(system: str, question: str, candidates: list[str], placeholder: str) -> Prompt:
    if len(candidates) > len(LETTERS):
        raise ValueError(f"{len(candidates)} options; at most {len(LETTERS)} are supported")
    text, video, q_start, nq = _question_turn(system, question, placeholder)
    text += "\nOptions:"
    options = []
    for letter, cand in zip(LETTERS, candidates):
        text += "\n"
        start = len(text)
        text += f"({letter}) {cand}"
        options.append((start, len(text)))
    q_span = (q_start, len(text))
    text += POST_QUESTION + " ASSISTANT:" + ANSWER_PREFIX
    return Prompt(text, video, q_span, nq, tuple(options))


def build_open_prompt(system: str, question: str, answer_prompt: str, placeholder: str) -> Prompt:
    """The open-ended variant (the paper's Table 2): no options, and the assistant turn pre-filled with
    a task's answer prompt ("The scene in the video changes from the") that the answer continues."""
    text, video, q_start, nq = _question_turn(system, question, placeholder)
    q_span = (q_start, len(text))
    text += " ASSISTANT:" + answer_prompt
    return Prompt(text, video, q_span, nq, ())

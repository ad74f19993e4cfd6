"""Open-ended answers (the paper's Table 2): no options; a task's answer prompt pre-fills the assistant
turn ("The scene in the video changes from the") and the model continues it in words, greedily.

Answer prompts are per task in the dataset's config (`answer_prompts`), `{name}` fields filled from
the question's parameters. The reference is the correct option's text, less its first word when the
prompt already ends with it ("from" + "from sea to grass" -> "sea to grass"). Scored as the paper
does (the first generated token against the reference's first token) and by exact match of the words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vlmflow.question import Question


@dataclass(frozen=True)
class OpenAnswer:
    prompt: str  # the answer prompt that pre-fills the assistant turn ("" for none)
    reference: str  # the expected continuation
    system: str | None = None  # a system prompt in place of the model's (VCGBench: Video-ChatGPT's)
    label: str = "Question: "  # written before the question (VCGBench: none)


def open_answer(q: Question, answer_prompts: dict[str, str]) -> OpenAnswer:
    """The answer prompt and reference of one question."""
    if q.task not in answer_prompts:
        raise KeyError(
            f"{q.dataset}/{q.task}: no open-ended answer prompt; add one under the dataset's "
            f"`answer_prompts` in config.yaml (tasks with one: {sorted(answer_prompts)})"
        )
    try:
        prompt = answer_prompts[q.task].format(**(q.params or {}))
    except KeyError as err:
        raise KeyError(
            f"{q.dataset}/{q.task}: answer prompt {answer_prompts[q.task]!r} names {err}, which this "
            f"question's parameters do not hold ({sorted(q.params or {})})"
        ) from err
    words = q.answer.split()
    last = prompt.split()[-1].lower() if prompt.split() else ""
    if len(words) > 1 and words[0].lower() == last:
        words = words[1:]
    return OpenAnswer(prompt, " ".join(words))


def normalise(text: str) -> str:
    """Lower case, words only: what exact match compares."""
    return " ".join(re.findall(r"[\w']+", text.lower()))


def exact_match(generated: str, reference: str) -> bool:
    return normalise(generated) == normalise(reference)

r"""The paper's multiple-choice prompt (MVBench style), with the character span of every region.

LLaVA's chat format (the authors' conversation for Mini-InternVL has Phi-3's roles "<|user|>
" /
"<|assistant|>
" in the same places, with the same system prompt and separators):

    {system}
 USER: <image>
 USER: Question: {q}
Options:
(A) {c0}
(B) {c1}
Only give the
    best option. ASSISTANT:Best option:(

The answer is read from the next token after "Best option:(" (the option letter). VideoLLaMA3's
ChatML format has no system prompt, puts the video and the question in one user turn and leaves
the assistant turn empty (the last token is the newline after "assistant").
"""

from __future__ import annotations

from dataclasses import dataclass

LETTERS = "ABCDEFGH"
MVBENCH_SYSTEM = (
    "Carefully watch the video and pay attention to the cause and sequence of events, the detail and "
    "movement of objects, and the action and pose of persons. Based on your observations, select the "
    "best option that accurately addresses the question."
)
# the system prompt of the Video-ChatGPT benchmark's evaluation (VCGBench), as the paper's evaluation
# code writes it (no space after "language.")
VIDEO_CHATGPT_SYSTEM = (
    "You are Video-ChatGPT, a large vision-language assistant. You are able to understand the video "
    "content that the user provides, and assist the user with a variety of tasks using natural "
    "language.Follow the instructions carefully and explain your answers in detail based on the "
    "provided video."
)
POST_QUESTION = " \nOnly give the best option."
ANSWER_PREFIX = "Best option:("


@dataclass(frozen=True)
class ChatFormat:
    """How a model family writes the prompt around its parts:
    opening (may hold {system}) + video + between + "Question: ..." + post_question + assistant +
    answer prefix (or the open-ended answer prompt)."""

    opening: str
    between: str
    assistant: str
    post_question: str = POST_QUESTION
    answer_prefix: str = ANSWER_PREFIX


LLAVA_CHAT = ChatFormat(opening="{system}\n USER: ", between="\n USER: ", assistant=" ASSISTANT:")
PHI3_CHAT = ChatFormat(opening="{system}\n <|user|>\n", between="\n <|user|>\n", assistant=" <|assistant|>\n")
CHATML_CHAT = ChatFormat(  # VideoLLaMA3's TVBench/TOMATO instruction, no answer pre-fill
    opening="<|im_start|>user\n",
    between="\n",
    assistant="<|im_end|>\n<|im_start|>assistant\n",
    post_question="\nAnswer with the option's letter from the given choices directly and only give the "
    "best option.",
    answer_prefix="",
)


def is_letter(token: str, letter: str) -> bool:
    """Does a decoded answer token name this option letter (case and spaces ignored)?"""
    return token.strip().lower() == letter.lower()


@dataclass(frozen=True)
class Prompt:
    """Prompt text and the character spans [start, end) of its regions."""

    text: str
    placeholder: tuple[int, int]  # the video's text (placeholders and per-frame text)
    question: tuple[int, int]  # "Question: ... (D) last option"
    non_option_question: tuple[int, int]  # the raw question text
    options: tuple[tuple[int, int], ...]  # "(X) option text", in display order


def _question_turn(
    chat: ChatFormat, system: str, question: str, video: str, label: str = "Question: "
) -> tuple[str, tuple[int, int], int, tuple[int, int]]:
    """Opening, video and "Question: {q}" (or another `label`) -> (text, video span, start of the
    question region, span of the raw question)."""
    head = chat.opening.format(system=system)
    span = (len(head), len(head) + len(video))
    text = head + video + chat.between
    q_start = len(text)
    text += label
    nq = (len(text), len(text) + len(question))
    return text + question, span, q_start, nq


OPTION_STYLES = {"paren": "({letter}) {text}", "dot": "{letter}. {text}"}


@dataclass(frozen=True)
class QuestionStyle:
    """How a benchmark writes its options ("(A) ..." or "A. ...") and, where the chat pre-fills the
    answer, its answer prefix (None: the chat's own, `Best option:(`)."""

    option_style: str = "paren"
    answer_prefix: str | None = None

    @classmethod
    def of(cls, params: dict, family: str) -> "QuestionStyle":
        """A question's style from its loader's params: `option_style` (a style, or one per model
        family with a "default") and `answer_prefix`."""
        style = params.get("option_style", "paren")
        if isinstance(style, dict):
            style = style.get(family, style.get("default", "paren"))
        return cls(style, params.get("answer_prefix"))


def build_prompt(
    system: str,
    question: str,
    candidates: list[str],
    video: str,
    chat: ChatFormat = LLAVA_CHAT,
    style: QuestionStyle = QuestionStyle(),
) -> Prompt:
    """`video`: the video's text in the prompt (its placeholder(s) and any per-frame text)."""
    if len(candidates) > len(LETTERS):
        raise ValueError(f"{len(candidates)} options; at most {len(LETTERS)} are supported")
    text, span, q_start, nq = _question_turn(chat, system, question, video)
    text += "\nOptions:"
    options = []
    for letter, cand in zip(LETTERS, candidates):
        text += "\n"
        start = len(text)
        text += OPTION_STYLES[style.option_style].format(letter=letter, text=cand)
        options.append((start, len(text)))
    q_span = (q_start, len(text))
    prefix = chat.answer_prefix and (
        style.answer_prefix or chat.answer_prefix
    )  # none where the chat has none
    text += chat.post_question + chat.assistant + prefix
    return Prompt(text, span, q_span, nq, tuple(options))


def build_open_prompt(
    system: str,
    question: str,
    answer_prompt: str,
    video: str,
    chat: ChatFormat = LLAVA_CHAT,
    label: str = "Question: ",
) -> Prompt:
    """The open-ended variant (the paper's Table 2): no options, and the assistant turn pre-filled with
    a task's answer prompt ("The scene in the video changes from the") that the answer continues; the
    open-ended flow on VCGBench: no label before the question, no pre-fill ("")."""
    text, span, q_start, nq = _question_turn(chat, system, question, video, label)
    q_span = (q_start, len(text))
    text += chat.assistant + answer_prompt
    return Prompt(text, span, q_span, nq, ())

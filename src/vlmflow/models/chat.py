"""A checkpoint's own chat template as the prompt's frame: what it renders for a system turn and one
user turn holding the video and the question, with the paper's answer pre-fill after it.

The template is rendered once with a marker for the user's text; the text before the video, between
the video and the question, and after the question (the generation prompt) become a `ChatFormat`,
so the prompt's regions keep their character spans. `check_rendered` renders the finished prompt's
own user text and fails where the template would have written something else.
"""

from __future__ import annotations

from vlmflow.prompt import (
    ANSWER_PREFIX,
    POST_QUESTION,
    ChatFormat,
    Prompt,
    QuestionStyle,
    build_open_prompt,
    build_prompt,
)

_MARK = "VLMFLOW_USER_TEXT"  # stands for the user's text while the template is rendered
VIDEO = [{"type": "video"}]  # the user turn's video item, as the processors' chat templates take it


def render(template: str, tokenizer, system: str, video: list[dict], text: str) -> str:
    """The template's text for [system turn,] one user turn (`video` content items, then `text`) and
    the generation prompt."""
    messages = [{"role": "user", "content": [*video, {"type": "text", "text": text}]}]
    if system:
        messages.insert(0, {"role": "system", "content": [{"type": "text", "text": system}]})
    return tokenizer.apply_chat_template(
        messages, chat_template=template, tokenize=False, add_generation_prompt=True
    )


def template_format(
    template: str, tokenizer, system: str, video: list[dict], video_text: str, what: str
) -> ChatFormat:
    """The ChatFormat the template renders: `video_text` is what it writes for the video items (e.g.
    `<video>`), which must appear once, before the user's text."""
    out = render(template, tokenizer, system, video, _MARK)
    if out.count(video_text) != 1 or out.count(_MARK) != 1 or out.index(video_text) > out.index(_MARK):
        raise ValueError(
            f"{what}: its chat template does not write the video ({video_text!r}) once before the "
            "user's text; this family's prompt needs the template saved with the checkpoint"
        )
    v = out.index(video_text)
    m = out.index(_MARK)
    return ChatFormat(
        opening=out[:v].replace("{", "{{").replace("}", "}}"),  # ChatFormat.opening is a format string
        between=out[v + len(video_text) : m],
        assistant=out[m + len(_MARK) :],
        post_question=POST_QUESTION,
        answer_prefix=ANSWER_PREFIX,
    )


def check_rendered(
    prompt: Prompt,
    chat: ChatFormat,
    continuation: str,
    template: str,
    tokenizer,
    system: str,
    video: list[dict],
    what: str,
    video_as: tuple[str, str] | None = None,
) -> None:
    """The prompt (built on `chat`) is the template's render of its own user text followed by
    `continuation` (the answer pre-fill): a template that changes the text it is given fails here.
    `video_as`: (what the template writes for the video, what the prompt writes in its place), as a
    processor expands the video's placeholder (InternVL's per-frame text)."""
    end = len(prompt.text) - len(chat.assistant) - len(continuation)
    want = render(template, tokenizer, system, video, prompt.text[prompt.question[0] : end]) + continuation
    if video_as is not None:
        want = want.replace(*video_as, 1)
    if want != prompt.text:
        raise ValueError(
            f"{what}: the prompt is not what the checkpoint's chat template renders for it: "
            f"{want!r} != {prompt.text!r}"
        )


def templated_prompt(
    template: str,
    tokenizer,
    system: str,
    q,
    answer,
    family: str,
    video_marker: str,
    video: str | None = None,
    what: str = "",
) -> Prompt:
    """The paper's prompt for `q` framed by the checkpoint's chat template: multiple choice with the
    answer pre-fill, or with an `OpenAnswer` the open-ended prompt; the template writes the video
    as `video_marker`, which the prompt writes as `video` (a processor's expansion; default the
    marker itself). Checked against the template's own render of it."""
    chat = template_format(template, tokenizer, system, VIDEO, video_marker, what)
    video = video_marker if video is None else video
    if answer is None:
        style = QuestionStyle.of(q.params, family)
        prompt = build_prompt("", q.question, q.candidates, video, chat, style)
        continuation = style.answer_prefix or chat.answer_prefix
    else:
        prompt = build_open_prompt("", q.question, answer.prompt, video, chat, answer.label)
        continuation = answer.prompt
    expanded = None if video == video_marker else (video_marker, video)
    check_rendered(prompt, chat, continuation, template, tokenizer, system, VIDEO, what, expanded)
    return prompt

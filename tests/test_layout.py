import pytest
import torch
from conftest import synthetic_sample

from vlmflow.prompt import LETTERS


def decode_span(adapter, ids, layout, span):
    shift = layout.n_tokens - len(ids)  # the placeholder became T*H*W tokens
    return adapter.tokenizer.decode([ids[i - shift] for i in range(*span)])


def squash(s):
    return "".join(s.split())


@pytest.mark.parametrize("task", ["action_sequence", "moving_direction", "scene_transition"])
def test_every_span_decodes_to_its_text(tiny_adapter, task):
    q, _ = synthetic_sample(task)
    ids, layout, letters = tiny_adapter.encode(q)
    text = lambda span: squash(decode_span(tiny_adapter, ids, layout, span))  # noqa: E731
    assert text(layout.non_option_question) == squash(q.question)
    for k, (span, cand) in enumerate(zip(layout.options, q.candidates)):
        assert text(span) == squash(f"({LETTERS[k]}) {cand}")
    full = (
        "Question: "
        + q.question
        + "Options:"
        + "".join(f"({LETTERS[k]}) {c}" for k, c in enumerate(q.candidates))
    )
    assert text(layout.question) == squash(full)
    assert text((layout.question[1], layout.n_tokens)) == squash(
        "Only give the best option. ASSISTANT:Best option:("
    )
    assert tiny_adapter.tokenizer.convert_ids_to_tokens(ids[-1]) == "("
    assert letters[q.answer_index] == tiny_adapter.tokenizer.convert_tokens_to_ids(LETTERS[q.answer_index])


def test_video_groups(tiny_adapter):
    q, frames = synthetic_sample()
    video = tiny_adapter.video_features(tiny_adapter.pixel_values(frames))
    sample = tiny_adapter.prepare(q, video)
    L = sample.layout
    T, H, W = L.grid
    assert video.shape[0] == T * H * W == L.video_range[1] - L.video_range[0]
    assert sample.inputs_embeds.shape[1] == L.n_tokens
    assert torch.equal(sample.inputs_embeds[0, L.video_range[0] : L.video_range[1]], video)
    assert [L.frame(t) for t in range(T)] == [
        (L.video_range[0] + t * H * W, L.video_range[0] + (t + 1) * H * W) for t in range(T)
    ]
    assert L.indices("cell[2,1,0]").tolist() == [L.video_range[0] + 2 * H * W + 1 * W]
    assert set(L.indices("false_options")) | set(L.indices("true_option")) == set(
        i for k in range(len(q.candidates)) for i in L.indices(f"option[{k}]")
    )
    assert L.indices("last").tolist() == [L.n_tokens - 1]


def test_frame_shared_positions(tiny_adapter):
    q, frames = synthetic_sample()
    _, layout, _ = tiny_adapter.encode(q)
    pos = tiny_adapter.position_ids(layout)
    v0, v1 = layout.video_range
    hw = layout.grid[1] * layout.grid[2]
    assert torch.equal(pos[v0 : v0 + hw], pos[v0 + hw : v0 + 2 * hw])  # frame 1 reuses frame 0's ids
    assert pos[v1] == v0 + hw and torch.all(pos[v1:].diff() == 1)


def test_batched_video_features_match_single(tiny_adapter):
    (_, f1), (_, f2) = synthetic_sample(seed=1), synthetic_sample(seed=2)
    pix = torch.stack([tiny_adapter.pixel_values(f1), tiny_adapter.pixel_values(f2)])
    both = tiny_adapter.video_features(pix)
    assert torch.allclose(both[1], tiny_adapter.video_features(tiny_adapter.pixel_values(f2)), atol=1e-5)

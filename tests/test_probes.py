"""Probes (Figs. 4, 5, 6, 9): the lens against a hand computation, bins, keywords, attention
probabilities, and the figures of the default run."""

import pandas as pd
import pytest
import torch
from conftest import synthetic_sample

from vlmflow.knockout.engine import KnockoutEngine
from vlmflow.knockout.spec import EXPERIMENTS
from vlmflow.probes import first_subtoken, layer_bins, lens_top_k, probe


def clean_sample(adapter, task="action_sequence"):
    q, frames = synthetic_sample(task)
    sample = adapter.prepare(q, adapter.video_features(adapter.pixel_values(frames)))
    return sample, KnockoutEngine(adapter).clean(sample)


def hidden_states(adapter, sample):
    """transformers' own `hidden_states` (the last one after the final norm), independent of the
    engine's layer stepping: L + 1 states [N, d]."""
    parts = adapter.decoder()
    with torch.no_grad():
        out = parts.text_model(
            inputs_embeds=sample.inputs_embeds, position_ids=sample.position_ids, output_hidden_states=True
        )
    return [h[0] for h in out.hidden_states]


def test_lens_projects_transformers_hidden_states_on_one_layer_axis(tiny_adapter):
    sample, clean = clean_sample(tiny_adapter)
    parts, L = tiny_adapter.decoder(), tiny_adapter.n_layers
    hs = hidden_states(tiny_adapter, sample)
    _, tops = probe(KnockoutEngine(tiny_adapter), sample, False, ["embedding", "lm_head"], 3)
    video = sample.layout.indices("video")
    E = parts.embed_tokens.weight
    with torch.no_grad():
        for layer in (0, 1, 3, L):  # the embeddings, outputs of layers 1 and 3, the final norm's output
            assert tops["embedding"][0].shape[0] == L + 1
            h = hs[layer][video]  # [n_video, d]
            # the paper's lens: the input embedding matrix, no norm; state L is normed already
            expected = {"embedding": h @ E.T, "lm_head": parts.lm_head(parts.norm(h) if layer < L else h)}
            for projection, logits in expected.items():
                ids, probs = (t[layer] for t in tops[projection])
                top = torch.softmax(logits, -1).topk(3)
                assert torch.equal(ids, top.indices), (projection, layer)
                assert torch.allclose(probs, top.values, atol=1e-5)
        chunked = lens_top_k(tiny_adapter, sample, hs[1], "embedding", False, 3, chunk_bytes=4096)
        assert torch.equal(chunked[0], tops["embedding"][0][1])  # computing in chunks changes nothing


@pytest.mark.parametrize("final_norm", [True, False])
def test_answer_probability_of_the_last_layer_is_the_models_answer(tiny_adapter, final_norm):
    sample, clean = clean_sample(tiny_adapter)
    rows, _ = probe(KnockoutEngine(tiny_adapter), sample, final_norm, [], 1)
    assert [r["layer"] for r in rows] == list(range(tiny_adapter.n_layers + 1))
    own = tiny_adapter.plain_forward(sample)  # the model's own softmax at the last position
    assert rows[-1]["p_true"] == pytest.approx(float(own[sample.gt_token]), abs=1e-6)
    false = [t for t in sample.option_tokens if t != sample.gt_token]
    assert rows[-1]["p_false"] == pytest.approx(float(own[false].mean()), abs=1e-6)
    # below the last layer the setting decides: lm_head on the raw state, or after the final norm
    parts, h = tiny_adapter.decoder(), hidden_states(tiny_adapter, sample)[2][-1]
    with torch.no_grad():
        p = torch.softmax(parts.lm_head(parts.norm(h) if final_norm else h), -1)
    assert rows[2]["p_true"] == pytest.approx(float(p[sample.gt_token]), abs=1e-6)


def test_bins_hold_exactly_their_layers():
    assert layer_bins(40, 5) == [(a, a + 4) for a in range(1, 41, 5)]  # 8 bins of 5, none shared
    assert layer_bins(8, 3) == [(1, 3), (4, 6), (7, 8)]
    with pytest.raises(ValueError):
        layer_bins(8, 0)


def test_lens_cells_follow_the_samples_own_grid():
    from vlmflow.stages.probes import lens_frame

    ids = torch.arange(2 * 12 * 1).reshape(2, 12, 1)  # [L+1, n_video, k]: 12 video tokens
    for grid, cell in (((2, 2, 3), (1, 1, 2)), ((3, 1, 4), (2, 0, 3)), ((1, 3, 4), (0, 2, 3))):
        rows = lens_frame("s", {"embedding": (ids, ids.float())}, grid)
        last = rows[(rows.layer == 0) & (rows.position == 11)].iloc[0]
        assert (last.t, last.h, last.w) == cell  # position 11's cell in that grid, row-major
        assert sorted(set(zip(rows.t, rows.h, rows.w))) == sorted(
            (t, h, w) for t in range(grid[0]) for h in range(grid[1]) for w in range(grid[2])
        )


def test_keywords_are_counted_by_their_first_subtoken(tiny_adapter, pllava_checkpoint):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(pllava_checkpoint))  # a Llama BPE tokenizer
    for word in ("bottle", "sandwich", "throw"):
        ids = tok(word, add_special_tokens=False)["input_ids"]
        assert first_subtoken(tok, word) == ids[0]
    assert first_subtoken(tiny_adapter.tokenizer, "square") == tiny_adapter.tokenizer.convert_tokens_to_ids(
        "square"
    )
    with pytest.raises(ValueError, match="no token for the keyword"):
        first_subtoken(tiny_adapter.tokenizer, "zebra")


def test_attention_probabilities_sum_to_one_over_allowed_keys_and_vanish_on_blocked(tiny_adapter):
    sample, _ = clean_sample(tiny_adapter)
    L = sample.layout
    rows = L.indices("frame[2]")[:3].tolist() + [L.last]
    engine = KnockoutEngine(tiny_adapter)
    every = list(range(tiny_adapter.n_layers))
    blocked = engine.attention_probs(sample, rows, [1, 2], EXPERIMENTS["cross_frame"][0], every)
    clean = engine.attention_probs(sample, rows, [1, 2])
    earlier = L.indices("frame[0]").tolist() + L.indices("frame[1]").tolist()
    for probs in (blocked, clean):
        for p in probs.values():  # [H, rows, N]
            assert torch.allclose(p.sum(-1), torch.ones(p.shape[:2]), atol=1e-5)
            for i, r in enumerate(rows):
                assert float(p[:, i, r + 1 :].abs().sum()) == 0.0  # the future
    assert float(blocked[1][:, :3][:, :, earlier].abs().max()) == 0.0  # earlier frames, blocked
    assert float(clean[1][:, :3][:, :, earlier].min()) > 0.0  # read without the knockout


def test_the_default_run_draws_the_probe_figures(finished_run):
    for name in (
        "fig4_logit_lens_freq",
        "fig5_logit_lens_frames",
        "fig6_attention_maps",
        "fig9_answer_probability",
    ):
        for ext in ("png", "pdf"):
            assert (finished_run / "figures" / f"{name}.{ext}").stat().st_size > 0
    fig9 = pd.read_csv(finished_run / "figures/fig9_answer_probability.csv")
    assert set(fig9.option) == {"True option", "False option"} and fig9.layer.min() == 0
    fig4 = pd.read_csv(finished_run / "figures/fig4_logit_lens_freq.csv")
    assert set(fig4.projection) <= {"embedding", "lm_head"} and "All Average" in set(fig4.word)
    for _, g in fig4[fig4.word != "All Average"].groupby(["projection", "kind", "word"]):
        assert g.freq.sum() == pytest.approx(1.0)  # normalised per keyword over the bins
    fig6 = pd.read_csv(finished_run / "figures/fig6_attention_maps.csv")
    assert set(fig6.condition) == {"baseline", "no cross-frame"}

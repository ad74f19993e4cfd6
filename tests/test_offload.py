"""A model split by `device_map` (accelerate's big-model loading): layers offloaded to disk run
through accelerate's hooks on the CPU, and every engine path equals the same model in one piece.
Checkpoints larger than one GPU load this way (there the split is over GPUs and CPU)."""

import pytest
import torch
from conftest import make_tiny_checkpoint
from test_engine import prepared

from vlmflow.knockout.engine import KnockoutEngine, canary
from vlmflow.knockout.masks import compile_knockout
from vlmflow.knockout.pathways import Pathway
from vlmflow.knockout.spec import EXPERIMENTS, Condition, sweep
from vlmflow.models import toy
from vlmflow.models.llava_video import LlavaVideoAdapter
from vlmflow.open_ended import OpenAnswer

pytest.importorskip("accelerate")

TEXT = "model.language_model"


def split_map(n_layers: int) -> dict:
    """Vision tower, embeddings, head and the outer layers on the CPU; the middle layers on disk."""
    m = {
        "model.vision_tower": "cpu",
        "model.multi_modal_projector": "cpu",
        f"{TEXT}.embed_tokens": "cpu",
        f"{TEXT}.norm": "cpu",
        f"{TEXT}.rotary_emb": "cpu",
        "lm_head": "cpu",
    }
    for l in range(n_layers):
        m[f"{TEXT}.layers.{l}"] = "disk" if 0 < l < n_layers - 1 else "cpu"
    return m


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    path = str(make_tiny_checkpoint(tmp_path_factory.mktemp("split") / "m"))
    whole = LlavaVideoAdapter.from_pretrained(path, system_prompt=toy.SYSTEM_PROMPT)
    split = LlavaVideoAdapter.from_pretrained(
        path, system_prompt=toy.SYSTEM_PROMPT, device_map=split_map(whole.n_layers)
    )
    return whole, split


def test_the_split_model_is_offloaded(pair):
    _, split = pair
    layers = split.decoder().layers
    assert layers[1].self_attn.q_proj.weight.device.type == "meta"  # the weights live on disk
    assert type(layers[1]._hf_hook).__name__ == "AlignDevicesHook"
    assert split.device == torch.device("cpu")


@pytest.mark.parametrize("backend", ["sdpa", "eager"])
def test_every_engine_path_on_the_split_model_equals_the_whole_model(pair, backend):
    """Every knockout family in every window style, a pathway forward, attention probabilities and
    greedy generation under a knockout: the split model gives what the whole one gives, and the
    canary holds on it."""
    whole, split = pair
    (q, frames, s1), (_, _, s2) = prepared(whole), prepared(split)
    assert torch.equal(s1.inputs_embeds, s2.inputs_embeds)
    e1, e2 = KnockoutEngine(whole, backend=backend), KnockoutEngine(split, backend=backend)
    canary(e2, s2)
    L = whole.n_layers
    styles = ("center", "inverse", "top_down", "bottom_up")
    windows = [w for st in styles for w in sweep(L, 3, st)]
    conds = [Condition(k, w) for fam in EXPERIMENTS.values() for k in fam for w in windows]
    p1, p2 = e1.run(s1, conds), e2.run(s2, conds)
    assert (p1 - p2).abs().max() <= 1e-6
    assert (p1 - e1.clean(s1).probs).abs().max() > 1e-4  # the knockouts do change things

    path = Pathway("split", L, (1, 2), (1, 3), (2, 4))
    lw1 = e1.run_layerwise(s1, lambda l: compile_knockout(s1.layout, path.knockout(l)))
    lw2 = e2.run_layerwise(s2, lambda l: compile_knockout(s2.layout, path.knockout(l)))
    assert (lw1 - lw2).abs().max() <= 1e-6

    rows = [s1.layout.n_tokens - 1, s1.layout.video_range[0]]
    cross = EXPERIMENTS["cross_frame"][0]
    a1 = e1.attention_probs(s1, rows, [0, 2], cross, [1, 2])
    a2 = e2.attention_probs(s2, rows, [0, 2], cross, [1, 2])
    assert all((a1[l] - a2[l]).abs().max() <= 1e-6 for l in (0, 2))

    answer = OpenAnswer("The scene in the video changes from", "sea to grass")
    g1, g2 = (a.prepare(q, a.video_features(a.pixel_values(frames)), answer) for a in (whole, split))
    stop = {whole.tokenizer.eos_token_id}
    layers = tuple(range(L // 2 + 1))
    assert e1.generate(g1, 6, stop, cross, layers) == e2.generate(g2, 6, stop, cross, layers)

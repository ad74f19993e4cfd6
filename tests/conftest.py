"""Shared fixtures: tiny random-weight checkpoints of the LLaVA video family, saved with
save_pretrained and loaded back through the adapter, as real checkpoints are."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vlmflow.data import synthetic
from vlmflow.models import toy
from vlmflow.models.base import Question
from vlmflow.models.llava_video import LlavaVideoAdapter

REPO = Path(__file__).resolve().parents[1]


def make_tiny_checkpoint(out: Path, layers: int = 4, kv_heads: int = 2, positions: str = "frame_shared",
                         seed: int = 0) -> Path:
    tok = toy.build_tokenizer()
    model = toy.build_model(tok, seed)
    cfg = model.config
    cfg.text_config.num_hidden_layers = layers
    cfg.text_config.num_key_value_heads = kv_heads
    cfg.text_config.hidden_size = 64
    cfg.text_config.intermediate_size = 128
    cfg.video_position_ids = positions
    torch.manual_seed(seed)
    from transformers import LlavaForConditionalGeneration

    model = LlavaForConditionalGeneration(cfg)
    with torch.no_grad():  # sharpen the random model so probabilities are far from uniform
        model.lm_head.weight.mul_(30)
    toy.save(model, tok, toy.build_image_processor(), out)
    return out


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "tiny-llava-video")


@pytest.fixture(scope="session")
def tiny_adapter(tiny_checkpoint) -> LlavaVideoAdapter:
    return LlavaVideoAdapter.from_pretrained(str(tiny_checkpoint), system_prompt=toy.SYSTEM_PROMPT)


def synthetic_sample(task: str = "action_sequence", seed: int = 0):
    q = synthetic.sample_question(task, np.random.default_rng(seed))
    question = Question("synthetic", task, f"{task}_{seed}", q.question, q.candidates, q.candidates.index(q.answer))
    return question, synthetic.render(q, q.sampled_indices())

"""What every model adapter provides: inputs + TokenLayout from a question, and the decoder parts."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vlmflow.layout import TokenLayout


@dataclass
class Question:
    """One canonical multiple-choice question (any benchmark)."""

    dataset: str
    task: str
    sample_id: str
    question: str
    candidates: list[str]
    answer_index: int  # index of the correct candidate


@dataclass
class PreparedSample:
    """Model inputs of one question, ready for the decoder."""

    inputs_embeds: torch.Tensor  # [1, N, d]
    position_ids: torch.Tensor  # [1, N]
    layout: TokenLayout
    gt_token: int  # token id of the correct option letter
    option_tokens: list[int]  # token id of each option letter, in display order


@dataclass
class DecoderParts:
    """The pieces of the language model the knockout engine and probes run by hand."""

    layers: torch.nn.ModuleList
    norm: torch.nn.Module
    rotary_emb: torch.nn.Module
    lm_head: torch.nn.Module
    embed_tokens: torch.nn.Module

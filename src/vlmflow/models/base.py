"""The adapter contract: all that the rest of vlmflow may know of a VideoLLM family.

The knockout engine, the dense-mask reference, the stages and the toy trainer use an `Adapter` and
nothing else: no model attribute, no private transformers setting. One subclass per family lives in
its own file beside this one (`llava_video.py`, ...). What a subclass must provide is abstract here;
the rest has a default that suits transformers' decoder-only language models and may be overridden.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from vlmflow.layout import TokenLayout
from vlmflow.open_ended import OpenAnswer
from vlmflow.question import Question

Rope = tuple[torch.Tensor, torch.Tensor]  # (cos, sin), each [..., N, head_dim]


@dataclass
class PreparedSample:
    """Model inputs of one question, ready for the decoder."""

    inputs_embeds: torch.Tensor  # [1, N, d]
    position_ids: torch.Tensor  # [1, N], or [3, 1, N] for 3-D (M-RoPE) positions
    layout: TokenLayout
    gt_token: int  # token id of the correct option letter
    option_tokens: list[int]  # token id of each option letter, in display order
    video_tokens: torch.Tensor  # the video features it was prepared from, as cached ([n_video, ...])
    # per decoder layer l < len: [n_video, d] added to the video positions' states after layer l, a
    # path into the language model outside attention (Qwen3-VL's DeepStack); empty for most families
    layer_additions: tuple[torch.Tensor, ...] = ()


class NonFinite(ValueError):
    """NaN or Inf in a model's probabilities: a broken checkpoint, or an overflow in low precision."""


def finite(probs: torch.Tensor) -> torch.Tensor:
    """`probs` itself, or NonFinite when any is NaN or Inf (no such number reaches a table)."""
    if not bool(torch.isfinite(probs).all()):
        raise NonFinite(
            "the model's next-token probabilities hold NaN or Inf: a broken checkpoint, or an "
            "overflow in its dtype (try the model's `dtype: float32`)"
        )
    return probs


@dataclass(frozen=True)
class Facts:
    """What a checkpoint's config files say of a model before it is loaded: the checks of the config
    read them (a window longer than the model, a head or frame that does not exist)."""

    n_layers: int
    n_heads: int
    grid: tuple[int, int, int] | None  # (T, H, W) of the video tokens; None: per sample


@dataclass
class DecoderParts:
    """The pieces of the language model that the engine and the probes run by hand."""

    text_model: nn.Module  # the decoder stack (a transformers PreTrainedModel): inputs_embeds, position_ids
    #                        -> last_hidden_state, final norm applied
    layers: nn.ModuleList  # its decoder layers, in order
    norm: nn.Module  # the final norm
    rotary_emb: nn.Module  # (hidden, position_ids) -> Rope
    lm_head: nn.Module
    embed_tokens: nn.Module

    @classmethod
    def of(cls, text_model: nn.Module, lm_head: nn.Module) -> "DecoderParts":
        """The parts of a transformers decoder (`layers`, `norm`, `rotary_emb`, `embed_tokens`)."""
        tm = text_model
        return cls(tm, tm.layers, tm.norm, tm.rotary_emb, lm_head, tm.embed_tokens)


class Adapter(ABC):
    """One VideoLLM family. Subclasses set `family`, `model`, `tokenizer` and `grid` (T, H, W).

    `grid` is the checkpoint's default: the frames it reads and what the config's checks know before a
    sample is seen. A sample's own grid is its `TokenLayout.grid` (a processor may pick frames and
    resolution per video), and every stage reads that one."""

    family: str
    model: nn.Module
    tokenizer: object
    grid: tuple[int, int, int]  # the default (T, H, W); a sample's own is sample.layout.grid
    model_id: str = ""  # the path or hub id it was loaded from (set by the loader; provenance)

    # --- what the family supports: stated here once, read by the config check and the loader ---
    OPTIONS: dict[str, tuple] = {}  # the family's own settings: name -> allowed values, the first the default
    DEVICE_MAP = False  # can split a model over several GPUs (transformers' `device_map`)
    GRID_PER_SAMPLE = False  # its processor picks each sample's frames and resolution (no grid to check)
    ATTENTION_BACKENDS = ("sdpa", "eager", "flex")  # the knockout attention backends it runs under
    END_OF_TURN: str | None = None  # the chat's end-of-turn token, which also ends an answer

    @classmethod
    def read_facts(cls, path: str, pooling_shape=None) -> Facts | None:
        """The model's depth, heads and video grid from its config files (a local directory, or the
        Hugging Face cache), without loading it; None where they cannot be read before loading."""
        return None

    @classmethod
    def settings_of(cls, given: dict, device_map=None, where: str = "") -> dict:
        """The family's own settings from `given` (a model's config entry less the settings every
        family takes), each checked against the allowed values and defaulted: the family's switches
        recorded with every row. Raises ValueError naming `where`, the setting and the choices."""
        where = f"{where}: " if where else ""
        unknown = sorted(set(given) - set(cls.OPTIONS))
        if unknown:
            own = ", ".join(f"{k} ({' | '.join(map(str, v))})" for k, v in cls.OPTIONS.items()) or "none"
            raise ValueError(
                f"{where}{unknown} not a setting of the {cls.family} family; its own settings: {own}"
            )
        for k, v in given.items():
            if v not in cls.OPTIONS[k]:
                raise ValueError(f"{where}{k} must be one of {list(cls.OPTIONS[k])}, got {v!r}")
        if device_map is not None and not cls.DEVICE_MAP:
            raise ValueError(
                f"{where}device_map is not supported by the {cls.family} family (it loads on one GPU)"
            )
        return {k: given.get(k, allowed[0]) for k, allowed in cls.OPTIONS.items()}

    # --- loading -----------------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def from_pretrained(
        cls, path: str, dtype: torch.dtype = torch.float32, device: str = "cpu", **kw
    ) -> "Adapter":
        """Load a checkpoint from a hub id or a local directory, strict about missing or misshaped
        weights."""

    # --- video and prompt --------------------------------------------------------------------
    @abstractmethod
    def pixel_values(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 RGB frames [T, H, W, 3] -> the vision tower's input."""

    @abstractmethod
    def video_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Vision input -> video tokens [T*H*W, d] in the layout's frame-major order (gradients flow);
        a family that feeds more than one feature per token gives [T*H*W, k, d] (Qwen3-VL's DeepStack)."""

    @abstractmethod
    def prepare(
        self, q: Question, video_tokens: torch.Tensor, answer: OpenAnswer | None = None
    ) -> PreparedSample:
        """Prompt + video tokens -> decoder inputs, positions and the TokenLayout: the multiple-choice
        prompt, or with `answer` the open-ended one (no options; `gt_token` = the reference's first
        token, `option_tokens` empty)."""

    def answer_tokens(self, text: str) -> list[int]:
        """Token ids of an answer continuation (no special tokens), leading empty pieces (a lone
        SentencePiece space) dropped: the first is the paper's ground-truth token."""
        ids = self.tokenizer(text.strip(), add_special_tokens=False)["input_ids"]
        while ids and not self.tokenizer.decode([ids[0]]).strip():
            ids = ids[1:]
        if not ids:
            raise ValueError(f"answer {text!r} has no tokens")
        return ids

    @staticmethod
    def next_position(position_ids: torch.Tensor) -> torch.Tensor:
        """Positions of one more text token after the sequence ([1, 1], or [3, 1, 1] for 3-D positions)."""
        return position_ids[..., -1:] + 1

    # --- decoder -----------------------------------------------------------------------------
    @abstractmethod
    def decoder(self) -> DecoderParts:
        """The language model's parts."""

    def rotary(self, sample: PreparedSample, hidden: torch.Tensor) -> Rope:
        """Rotary embeddings of every position of the sample."""
        return self.decoder().rotary_emb(hidden, sample.position_ids)

    @staticmethod
    def position_rows(position_ids: torch.Tensor, q0: int) -> torch.Tensor:
        """Positions of rows q0..N-1: the sequence is the last axis ([1, N] and [3, 1, N] alike)."""
        return position_ids[..., q0:]

    @staticmethod
    def rope_rows(rope: Rope, q0: int) -> Rope:
        """Rotary embeddings of rows q0..N-1: the sequence is the second-to-last axis."""
        return tuple(r[..., q0:, :] for r in rope)

    def layer_forward(
        self, layer: int, hidden: torch.Tensor, rope: Rope, position_ids: torch.Tensor, **attention_kwargs
    ) -> torch.Tensor:
        """One decoder layer on hidden [b, q, d] -> [b, q, d]; keyword arguments reach the
        attention function (the knockout plan travels this way)."""
        out = self.decoder().layers[layer](
            hidden,
            attention_mask=None,
            position_ids=position_ids,
            position_embeddings=rope,
            **attention_kwargs,
        )
        return out[0] if isinstance(out, tuple) else out

    @staticmethod
    def after_layer(layer: int, hidden: torch.Tensor, sample: PreparedSample, q0: int = 0) -> torch.Tensor:
        """Decoder layer `layer`'s output for rows q0..N-1, [b, N - q0, d] -> what the next layer
        reads: the sample's `layer_additions[layer]` added at its video positions (rows below q0 are
        never recomputed: their clean states hold it already)."""
        if layer >= len(sample.layer_additions):
            return hidden
        where = torch.as_tensor(sample.layout.feature_indices(), device=hidden.device)
        inside = where >= q0
        if not bool(inside.any()):
            return hidden
        add = sample.layer_additions[layer].to(hidden.device, hidden.dtype)[inside]  # [n, d]
        out = hidden.clone()
        rows = where[inside] - q0
        out[:, rows] = out[:, rows] + add
        return out

    def text_model_inputs(self, sample: PreparedSample) -> dict:
        """Keyword arguments the language model's own forward takes beside the embeddings and
        positions (Qwen3-VL: its DeepStack features and their positions); none by default."""
        return {}

    @contextmanager
    def attention_implementation(self, name: str):
        """Run the language model with another attention implementation (a transformers name or one
        registered in its AttentionInterface), through transformers' public API; restored on exit."""
        text_model = self.decoder().text_model
        saved = text_model.config._attn_implementation
        text_model.set_attn_implementation(name)
        try:
            yield
        finally:
            text_model.set_attn_implementation(saved)

    @torch.no_grad()
    def plain_forward(self, sample: PreparedSample, attn_implementation: str = "sdpa") -> torch.Tensor:
        """The unmodified model's own forward -> next-token probabilities [V] (fp32) at the last position."""
        parts = self.decoder()
        with self.attention_implementation(attn_implementation):
            h = parts.text_model(
                inputs_embeds=sample.inputs_embeds,
                position_ids=sample.position_ids,
                **self.text_model_inputs(sample),
            ).last_hidden_state
        return finite(torch.softmax(parts.lm_head(h[:, -1]).float(), dim=-1)[0])

    # --- facts -------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        """Where the model's inputs go: the lm_head's device, or where its offload hook runs it
        (device_map: an offloaded weight sits on the meta device)."""
        head = self.decoder().lm_head
        hook = getattr(head, "_hf_hook", None)
        if head.weight.device.type == "meta" and getattr(hook, "execution_device", None) is not None:
            return torch.device(hook.execution_device)
        return head.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.decoder().lm_head.weight.dtype

    @property
    def n_frames(self) -> int:
        """Frames the model reads per clip by default: one per frame of its grid (a family whose
        tokens cover several frames, e.g. Qwen2.5-VL's pairs, reads more)."""
        return self.grid[0]

    @property
    def n_layers(self) -> int:
        return len(self.decoder().layers)

    @property
    def n_heads(self) -> int:
        return self.decoder().text_model.config.num_attention_heads

    @property
    def stop_tokens(self) -> set[int]:
        """Token ids that end a generated answer: the tokenizer's end of sequence, and the chat's
        end-of-turn token (`END_OF_TURN`) where the family has one."""
        if self.END_OF_TURN is None:
            return {self.tokenizer.eos_token_id}
        ids = {self.tokenizer.eos_token_id, self.tokenizer.convert_tokens_to_ids(self.END_OF_TURN)}
        return ids - {None, self.tokenizer.unk_token_id}

    @property
    def settings(self) -> dict:
        """The family's switches that change results (recorded in every result row)."""
        return {name: getattr(self, name) for name in self.OPTIONS}

    @property
    def facts(self) -> Facts:
        return Facts(self.n_layers, self.n_heads, None if self.GRID_PER_SAMPLE else tuple(self.grid))

    def token_text(self, token_id: int) -> str:
        """The decoded text of one token (what the paper compares with the option letter)."""
        return self.tokenizer.decode([int(token_id)])

"""Two synthetic adapters that exercise what the LLaVA family never needs from the contract:

- `PerFrameAdapter`: a Llama decoder whose prompt gives each frame its own placeholder behind a
  text marker ("Frame 1 : <image> Frame 2 : <image> ..."), so the video tokens are per-frame spans
  separated by text, as in InternVL's and VideoLLaMA3's prompts;
- `MRopeAdapter`: a Qwen2.5-VL text model with 3-D (temporal, height, width) M-RoPE position ids
  [3, 1, N], as Qwen-based VideoLLMs use.

Both embed video frames with a fixed random linear map of each cell's mean colour (a stand-in
vision tower) and implement nothing beyond the `vlmflow.models.base.Adapter` contract.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from vlmflow.data import synthetic
from vlmflow.layout import build_layout
from vlmflow.models import toy
from vlmflow.models.base import Adapter, DecoderParts, PreparedSample
from vlmflow.models.encoding import continuation_ids
from vlmflow.open_ended import OpenAnswer
from vlmflow.prompt import LETTERS, build_open_prompt, build_prompt
from vlmflow.question import Question

GRID = (4, 2, 2)  # 4 frames of 2 x 2 video tokens
OPEN = OpenAnswer("The order of the squares is", "red then blue")  # an open-ended answer prompt


class _Model(nn.Module):
    """A language model with an lm_head and a stand-in vision projection."""

    def __init__(self, text_model: nn.Module, vocab: int, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.text_model = text_model
        d = text_model.config.hidden_size
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.vision = nn.Linear(3, d)
        with torch.no_grad():
            self.lm_head.weight.mul_(30)  # peaked answers, like a trained model


class _SyntheticAdapter(Adapter):
    per_frame: bool

    def __init__(self, model: _Model, tokenizer):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.grid = GRID
        self.image_id = tokenizer.convert_tokens_to_ids("<image>")

    @classmethod
    def from_pretrained(cls, path: str = "", dtype=torch.float32, device="cpu", seed: int = 0, **kw):
        words = synthetic.vocabulary([OPEN.prompt]) + ["Frame", "1", "2", "3", "4"]
        tok = toy.build_tokenizer(words)
        return cls(_Model(cls.text_model(len(tok), seed), len(tok), seed).to(device, dtype), tok)

    def pixel_values(self, frames: np.ndarray) -> torch.Tensor:
        T, H, W = self.grid
        x = torch.from_numpy(np.asarray(frames)).float().div(255)  # [T', S, S, 3]
        idx = np.linspace(0, len(x) - 1, T).round().astype(int)
        S = x.shape[1]
        cells = x[idx].reshape(T, H, S // H, W, S // W, 3).mean((2, 4))  # [T, H, W, 3]
        return cells.to(self.device, self.dtype)

    def video_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model.vision(pixel_values.flatten(0, 2))  # [T*H*W, d]

    def decoder(self) -> DecoderParts:
        tm = self.model.text_model
        return DecoderParts(tm, tm.layers, tm.norm, tm.rotary_emb, self.model.lm_head, tm.embed_tokens)

    def prepare(
        self, q: Question, video_tokens: torch.Tensor, answer: OpenAnswer | None = None
    ) -> PreparedSample:
        T, H, W = self.grid
        video = " ".join(f"Frame {t + 1} : <image>" for t in range(T)) if self.per_frame else "<image>"
        if answer is None:
            prompt = build_prompt(toy.SYSTEM_PROMPT, q.question, q.candidates, video)
        else:
            prompt = build_open_prompt(toy.SYSTEM_PROMPT, q.question, answer.prompt, video)
        enc = self.tokenizer(prompt.text, return_offsets_mapping=True)
        ids = enc["input_ids"]
        where = [i for i, t in enumerate(ids) if t == self.image_id]
        true = q.answer_index if answer is None else None
        layout = build_layout(prompt, enc["offset_mapping"], where, self.grid, true)
        text = self.decoder().embed_tokens(torch.tensor(ids, device=self.device))
        chunks = video_tokens.to(self.device, text.dtype).split(len(video_tokens) // len(where))
        parts, prev = [], 0
        for p, chunk in zip(where, chunks):
            parts += [text[prev:p], chunk]
            prev = p + 1
        embeds = torch.cat(parts + [text[prev:]]).unsqueeze(0)  # [1, N, d]
        if answer is not None:
            gt = continuation_ids(self.tokenizer, prompt.text, ids, answer.reference, q.sample_id)[0]
            return PreparedSample(
                embeds, self.positions(layout).to(self.device), layout, gt, [], video_tokens
            )
        letters = self.tokenizer.convert_tokens_to_ids([LETTERS[k] for k in range(len(q.candidates))])
        return PreparedSample(
            embeds,
            self.positions(layout).to(self.device),
            layout,
            letters[q.answer_index],
            letters,
            video_tokens,
        )

    def positions(self, layout) -> torch.Tensor:
        return torch.arange(layout.n_tokens).unsqueeze(0)


class PerFrameAdapter(_SyntheticAdapter):
    family = "synthetic_per_frame"
    per_frame = True

    @staticmethod
    def text_model(vocab: int, seed: int):
        from transformers import LlamaConfig, LlamaModel

        torch.manual_seed(seed)
        return LlamaModel(
            LlamaConfig(
                vocab_size=vocab,
                hidden_size=64,
                intermediate_size=128,
                num_hidden_layers=4,
                num_attention_heads=4,
                num_key_value_heads=2,
                max_position_embeddings=512,
            )
        )


class MRopeAdapter(_SyntheticAdapter):
    family = "synthetic_mrope"
    per_frame = False
    # transformers' Qwen2.5-VL text model refuses flex_attention, so the canary has no like-for-like
    # forward to hold the engine's flex path to
    ATTENTION_BACKENDS = ("sdpa", "eager")

    @staticmethod
    def text_model(vocab: int, seed: int):
        from transformers import Qwen2_5_VLTextConfig, Qwen2_5_VLTextModel

        torch.manual_seed(seed)
        cfg = Qwen2_5_VLTextConfig(
            vocab_size=vocab,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=512,
            bos_token_id=None,
            eos_token_id=None,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
        )
        return Qwen2_5_VLTextModel(cfg)

    def positions(self, layout) -> torch.Tensor:
        """[3, 1, N]: text tokens (p, p, p); video token (t, h, w) at (v0 + t, v0 + h, v0 + w); text
        after the video continues from the largest video position + 1 (Qwen2-VL's rule)."""
        T, H, W = self.grid
        v0, v1 = layout.video_range
        pos = torch.arange(layout.n_tokens).repeat(3, 1)  # [3, N]
        t, h, w = torch.meshgrid(torch.arange(T), torch.arange(H), torch.arange(W), indexing="ij")
        pos[:, v0:v1] = v0 + torch.stack([t.flatten(), h.flatten(), w.flatten()])
        after = int(pos[:, v0:v1].max()) + 1
        pos[:, v1:] = after + torch.arange(layout.n_tokens - v1)
        return pos.unsqueeze(1)

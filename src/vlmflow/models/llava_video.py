"""LLaVA-NeXT-Video-FT (PLLaVA format) and the LLaVA image models run through the same video path.

Video tokens (the paper's LLaVA-NeXT-Video-FT setting): each of T frames through the CLIP tower,
hidden states of `vision_feature_layer` (-2), CLS dropped -> projector per patch -> reshape
[1, d, T, h, w] -> AdaptiveAvgPool3d(pooling_shape) -> frame-major, row-major tokens that replace
the single image placeholder. No AnyRes, no newline token. The embedded toy VideoLLMs are
checkpoints of this same family (`config.video_position_ids = "frame_shared"` is their one
difference, see README).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from vlmflow.layout import TokenLayout
from vlmflow.models.base import Adapter, DecoderParts, Facts, PreparedSample
from vlmflow.models.encoding import embed_prompt, encode, prepare_sample
from vlmflow.models.native import strict_from_pretrained
from vlmflow.models.weights import Renames, cached_config
from vlmflow.open_ended import OpenAnswer
from vlmflow.prompt import MVBENCH_SYSTEM, QuestionStyle, build_open_prompt, build_prompt
from vlmflow.question import Question

DEFAULT_POOLING = (8, 12, 12)
# the released (PLLaVA, llava-hf) weight names -> transformers' names; transformers' own loading reads
# them, this table states the format (the tests' fixtures are written with it)
RELEASED_NAMES = Renames(
    [
        ("language_model.lm_head.", "lm_head."),
        ("language_model.model.", "model.language_model."),
        ("vision_tower.vision_model.", "model.vision_tower."),
        ("multi_modal_projector.", "model.multi_modal_projector."),
        ("image_newline", "model.image_newline"),
    ]
)


class LlavaVideoAdapter(Adapter):
    family = "llava_video"
    DEVICE_MAP = True

    def __init__(
        self,
        model,
        tokenizer,
        image_processor,
        system_prompt: str = MVBENCH_SYSTEM,
        pooling_shape: tuple[int, int, int] | str | None = None,
    ):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.system_prompt = system_prompt
        cfg = model.config
        self.grid = parse_pooling(pooling_shape or getattr(cfg, "pooling_shape", None) or DEFAULT_POOLING)
        self.pool = nn.AdaptiveAvgPool3d(self.grid)
        self.position_mode = getattr(cfg, "video_position_ids", "sequential")
        self.image_token = tokenizer.convert_ids_to_tokens(cfg.image_token_id)

    @classmethod
    def read_facts(cls, path: str, pooling_shape=None) -> Facts | None:
        released = cached_config(path)
        if released is None or released.get("model_type") not in ("llava", "llava_next"):
            return None
        from transformers import AutoConfig

        text = AutoConfig.for_model(**released).text_config  # transformers' defaults filled in
        grid = parse_pooling(pooling_shape or released.get("pooling_shape") or DEFAULT_POOLING)
        return Facts(text.num_hidden_layers, text.num_attention_heads, grid)

    @classmethod
    def from_pretrained(
        cls,
        path: str,
        dtype: torch.dtype = torch.float32,
        device: str = "cpu",
        device_map: str | dict | None = None,
        **kw,
    ):
        """Load from a hub id or a local directory (config, safetensors, tokenizer, image processor).

        PLLaVA-format (`model_type "llava"`) and llava-hf LLaVA-NeXT (`"llava_next"`) checkpoints
        load with their hub key names; a missing, unexpected or wrongly shaped weight is an error,
        never a silently re-initialised layer.
        """
        from transformers import AutoConfig, AutoTokenizer

        model_cls = _model_class(AutoConfig.from_pretrained(path), path)
        model = strict_from_pretrained(model_cls, path, dtype, device, device_map)
        tokenizer = AutoTokenizer.from_pretrained(path)
        check_image_token(tokenizer, model.config.image_token_id, path)
        processor = video_image_processor(path)
        check_crop_size(processor, model.config.vision_config.image_size, path)
        return cls(model, tokenizer, processor, **kw)

    def decoder(self) -> DecoderParts:
        return DecoderParts.of(self.model.model.language_model, self.model.lm_head)

    # --- video -------------------------------------------------------------------------------
    def pixel_values(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 RGB frames [T, H, W, 3] -> processed pixels [T, 3, S, S]."""
        out = self.image_processor(images=list(frames), return_tensors="pt")
        return out["pixel_values"].to(self.device, self.dtype)

    def video_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Pixels [T, 3, S, S] (or [B, T, 3, S, S]) -> video tokens [T'*H'*W', d] (or [B, ..., d]).

        Gradients flow, so training uses this same path.
        """
        batched = pixel_values.dim() == 5
        pix = pixel_values if batched else pixel_values.unsqueeze(0)
        B, T = pix.shape[:2]
        if T < self.grid[0]:
            raise ValueError(
                f"{T} frames cannot be pooled to {self.grid[0]}: set n_frames >= pooling_shape[0]"
            )
        cfg = self.model.config
        vision = self.model.model.vision_tower(pix.flatten(0, 1), output_hidden_states=True)
        feats = vision.hidden_states[cfg.vision_feature_layer]  # [B*T, 1+P, Dv]
        if cfg.vision_feature_select_strategy == "default":
            feats = feats[:, 1:]  # drop CLS
        feats = self.model.model.multi_modal_projector(feats)  # [B*T, P, d]
        P, d = feats.shape[1:]
        side = int(round(P**0.5))
        grid = feats.reshape(B, T, side, side, d).permute(0, 4, 1, 2, 3)  # [B, d, T, h, w]
        tokens = self.pool(grid).flatten(2).transpose(1, 2)  # [B, T'*H'*W', d]
        return tokens if batched else tokens[0]

    # --- text --------------------------------------------------------------------------------
    def encode(
        self, q: Question, answer: OpenAnswer | None = None
    ) -> tuple[list[int], TokenLayout, list[int]]:
        """Prompt token ids (one video placeholder), the expanded layout, and the option-letter ids;
        with an `answer`, the open-ended prompt (no options) and the reference's ids after it."""
        if answer is None:
            prompt = build_prompt(
                self.system_prompt,
                q.question,
                q.candidates,
                self.image_token,
                style=QuestionStyle.of(q.params, self.family),
            )
        else:
            system = self.system_prompt if answer.system is None else answer.system
            prompt = build_open_prompt(
                system, q.question, answer.prompt, self.image_token, label=answer.label
            )
        cfg = self.model.config
        n_ctx = getattr(cfg.text_config, "max_position_embeddings", None)
        return encode(self.tokenizer, prompt, q, cfg.image_token_id, self.grid, answer, n_ctx)

    def embed(self, ids: list[int], layout: TokenLayout, video_tokens: torch.Tensor) -> torch.Tensor:
        """Prompt ids with their one placeholder + video tokens [n_video, d] -> embeddings [N, d]."""
        return embed_prompt(
            self.decoder().embed_tokens, ids, self.model.config.image_token_id, layout, video_tokens
        )

    def prepare(
        self, q: Question, video_tokens: torch.Tensor, answer: OpenAnswer | None = None
    ) -> PreparedSample:
        """Prompt + video tokens [n_video, d] -> decoder inputs and the token layout."""
        return prepare_sample(
            self, q, video_tokens, answer, self.model.config.image_token_id, self.position_ids
        )

    def position_ids(self, layout: TokenLayout) -> torch.Tensor:
        """[N] positions; "frame_shared" gives every frame the same H*W positions (toy models)."""
        N = layout.n_tokens
        if self.position_mode == "sequential":
            return torch.arange(N)
        if self.position_mode != "frame_shared":
            raise ValueError(f"unknown video_position_ids {self.position_mode!r}")
        v0, v1 = layout.video_range
        hw = self.grid[1] * self.grid[2]
        pos = torch.arange(N)
        pos[v0:v1] = v0 + torch.arange(v1 - v0) % hw
        pos[v1:] = v0 + hw + torch.arange(N - v1)
        return pos


def _model_class(config, path: str):
    from transformers import LlavaForConditionalGeneration, LlavaNextForConditionalGeneration

    classes = {"llava": LlavaForConditionalGeneration, "llava_next": LlavaNextForConditionalGeneration}
    if config.model_type not in classes:
        raise ValueError(
            f"checkpoint {path} is a {config.model_type!r} model; the llava_video family "
            f"takes {sorted(classes)} (PLLaVA-format Video-FT or llava-hf LLaVA-NeXT)"
        )
    return classes[config.model_type]


def check_image_token(tokenizer, image_token_id: int, path: str) -> None:
    """The tokenizer reads the image placeholder as the one token config.json's image_token_id names."""
    token = tokenizer.convert_ids_to_tokens(image_token_id) if image_token_id < len(tokenizer) else None
    if token is None or tokenizer(token, add_special_tokens=False)["input_ids"] != [image_token_id]:
        raise ValueError(
            f"checkpoint {path}: its tokenizer (tokenizer.json, tokenizer_config.json) has no image "
            f"placeholder token with the id {image_token_id} that config.json's image_token_id names; "
            "use the tokenizer files saved with this checkpoint"
        )


def check_crop_size(processor, image_size: int, path: str) -> None:
    """The frames the image processor gives are the size the vision tower's patches tile."""
    crop = getattr(processor, "crop_size", None)  # a dict or transformers' SizeDict
    side = crop.get("height") if hasattr(crop, "get") else getattr(crop, "height", crop)
    if side is not None and side != image_size:
        raise ValueError(
            f"checkpoint {path}: preprocessor_config.json crops frames to {side} px but the vision "
            f"tower takes {image_size} px (config.json vision_config.image_size); use the "
            "preprocessor_config.json saved with this checkpoint"
        )


def video_image_processor(path: str):
    """The checkpoint's image processor reduced to plain CLIP resize + center crop + normalise: the
    paper's video path (an AnyRes LLaVA-NeXT processor would tile each frame)."""
    from transformers import AutoImageProcessor, CLIPImageProcessor

    proc = AutoImageProcessor.from_pretrained(path)
    if "LlavaNext" not in type(proc).__name__:
        return proc
    return CLIPImageProcessor(
        size=proc.size,
        crop_size=proc.crop_size,
        image_mean=proc.image_mean,
        image_std=proc.image_std,
        do_center_crop=True,
        rescale_factor=proc.rescale_factor,
    )


def parse_pooling(value) -> tuple[int, int, int]:
    """(T, H, W) from a list/tuple or the authors' "8-12-12" string."""
    parts = value.split("-") if isinstance(value, str) else list(value)
    if len(parts) != 3:
        raise ValueError(f"pooling_shape must be T-H-W, got {value!r}")
    return tuple(int(p) for p in parts)

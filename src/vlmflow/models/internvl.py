"""Mini-InternVL-4B-Video-FT and its image-stage base Mini-InternVL-Chat-4B-V1-5 (the paper's Fig. 2
contrast), loaded from InternVL's released format into transformers' own InternVL classes.

Video tokens: each frame resized to short side 448 and center-cropped to one 448 x 448 tile, as
the authors' evaluation code does (InternVL's own chat code squashes the frame to 448 x 448; no
dynamic tiling either way; ImageNet mean/std) -> InternViT, last layer, CLS dropped
-> 32 x 32 -> pixel shuffle 0.5 -> 16 x 16 x 4096 -> MLP projector -> 256 tokens per frame; the
frames, concatenated frame-major, replace the single `<IMG_CONTEXT>` of `<img><IMG_CONTEXT></img>`
(`<img>` and `</img>` are not video). Prompt: the paper's MVBench prompt in Phi-3's chat roles.

The released checkpoints name `InternVLChatModel` (remote code, never executed here): their
config.json is read by hand and the weights are renamed into transformers' names by an explicit
table, fused `attn.qkv` rows split into q, k, v; a missing, unexpected or misshaped weight is an error.
"""

from __future__ import annotations

import math
import re

import numpy as np
import torch

from vlmflow.layout import TokenLayout
from vlmflow.models.base import Adapter, DecoderParts, Facts, PreparedSample
from vlmflow.models.encoding import encode, prepare_sample
from vlmflow.models.llava_video import parse_pooling
from vlmflow.models.weights import (
    Renames,
    cached_config,
    fill_strictly,
    read_safetensors,
    released_config,
    released_tokenizer,
)
from vlmflow.open_ended import OpenAnswer
from vlmflow.prompt import MVBENCH_SYSTEM, PHI3_CHAT, QuestionStyle, build_open_prompt, build_prompt
from vlmflow.question import Question

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
IMG_CONTEXT = "<IMG_CONTEXT>"
DEFAULT_FRAMES = 8
VIDEO_TEXT = "<img>" + IMG_CONTEXT + "</img>"

_EMB, _NEMB = "vision_model.embeddings.", "model.vision_tower.embeddings."
_VIT, _NVIT = "vision_model.encoder.layers.{i}.", "model.vision_tower.encoder.layer.{i}."
# released name -> transformers' InternVLForConditionalGeneration name (the fused qkv: QKV below)
RENAMES = Renames(
    [
        (_EMB + "class_embedding", _NEMB + "cls_token"),
        (_EMB + "position_embedding", _NEMB + "position_embeddings"),
        (_EMB + "patch_embedding.", _NEMB + "patch_embeddings.projection."),
        (_VIT + "attn.proj.", _NVIT + "attention.projection_layer."),
        (_VIT + "attn.{w}_norm.", _NVIT + "attention.{w}_norm."),
        (_VIT + "ls1", _NVIT + "lambda_1"),
        (_VIT + "ls2", _NVIT + "lambda_2"),
        (_VIT + "norm1.", _NVIT + "layernorm_before."),
        (_VIT + "norm2.", _NVIT + "layernorm_after."),
        (_VIT + "mlp.", _NVIT + "mlp."),
        ("mlp1.0.", "model.multi_modal_projector.layer_norm."),
        ("mlp1.1.", "model.multi_modal_projector.linear_1."),
        ("mlp1.3.", "model.multi_modal_projector.linear_2."),
        ("language_model.model.", "model.language_model."),
        ("language_model.lm_head.", "lm_head."),
    ]
)
# one released `attn.qkv` weight holds the rows [q | k | v] of three of transformers'
QKV = re.compile(r"^vision_model\.encoder\.layers\.(\d+)\.attn\.qkv\.(weight|bias)$")
NATIVE_QKV = "model.vision_tower.encoder.layer.{layer}.attention.{part}_proj.{kind}"


def native_state_dict(released: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Released weights -> transformers' names; `attn.qkv` rows are [q | k | v]."""
    out = {}
    for key, value in released.items():
        m = QKV.match(key)
        if m:
            layer, kind = m.groups()
            for part, rows in zip("qkv", value.chunk(3, dim=0)):
                out[NATIVE_QKV.format(layer=layer, part=part, kind=kind)] = rows
            continue
        try:
            out[RENAMES.native(key)] = value
        except ValueError:
            raise ValueError(
                f"released weight {key!r} has no place in transformers' InternVL model"
            ) from None
    return out


def tile_features(model, pixel_values: torch.Tensor) -> torch.Tensor:
    """Tiles [T, 3, S, S] -> video tokens [T*h*w, d] through transformers' InternVL model (its
    `get_image_features`: the vision tower's configured layer, pixel shuffle, projector)."""
    cfg = model.config
    feats = model.model.get_image_features(
        pixel_values=pixel_values,
        vision_feature_layer=cfg.vision_feature_layer,
        vision_feature_select_strategy=cfg.vision_feature_select_strategy,
    ).pooler_output  # [T, h*w, d]
    return feats.flatten(0, 1)


def phi3_rope(llm: dict) -> dict:
    """Phi-3's released `rope_scaling` ("su", or "longrope" in later releases) -> transformers'
    `rope_parameters`, keeping the short/long factors and the attention factor
    sqrt(1 + ln(max / original) / ln(original))."""
    theta = llm.get("rope_theta", 10000.0)
    scaling = llm.get("rope_scaling")
    if not scaling:
        return {"rope_type": "default", "rope_theta": theta}
    kind = scaling.get("type", scaling.get("rope_type"))
    if kind not in ("su", "longrope"):
        raise ValueError(f"Phi-3 rope_scaling type {kind!r} is not supported (expected 'su' or 'longrope')")
    original = llm["original_max_position_embeddings"]
    factor = llm["max_position_embeddings"] / original
    attention = scaling.get("attention_factor")
    if attention is None:
        attention = 1.0 if factor <= 1 else math.sqrt(1 + math.log(factor) / math.log(original))
    return {
        "rope_type": "longrope",
        "rope_theta": theta,
        "short_factor": list(scaling["short_factor"]),
        "long_factor": list(scaling["long_factor"]),
        "original_max_position_embeddings": original,
        "factor": factor,
        "attention_factor": attention,
    }


def native_config(released: dict, image_token_id: int):
    """The released config.json (`InternVLChatModel`: `llm_config`, `vision_config`) -> InternVLConfig."""
    from transformers import InternVLConfig, InternVLVisionConfig, Phi3Config

    llm = dict(released["llm_config"])
    if llm.get("model_type", "phi3") != "phi3":
        raise ValueError(f"the LLM is {llm.get('model_type')!r}; this adapter reads Phi-3 (Mini-InternVL-4B)")
    rope = phi3_rope(llm)
    # InternVL's config writes its attention implementation (flash attention) into `llm_config`: the
    # workflow chooses its own (transformers 5's composite config drops it too; kept out explicitly)
    drop = {
        "rope_scaling",
        "rope_theta",
        "architectures",
        "auto_map",
        "_name_or_path",
        "model_type",
        "attn_implementation",
        "_attn_implementation",
        "torch_dtype",
        "dtype",
    }
    if (
        llm.get("tie_word_embeddings")
        or released.get("ps_version", "v2") != "v2"
        or released.get("select_layer", -1) != -1
    ):
        raise ValueError(
            "this adapter reads Mini-InternVL-4B's settings: untied lm_head, pixel shuffle v2, the vision "
            f"tower's last layer; the checkpoint has tie_word_embeddings={llm.get('tie_word_embeddings')}, "
            f"ps_version={released.get('ps_version')!r}, select_layer={released.get('select_layer')}"
        )
    text = Phi3Config(**{k: v for k, v in llm.items() if k not in drop}, rope_parameters=rope)
    v = released["vision_config"]
    size = released.get("force_image_size") or v["image_size"]
    vision = InternVLVisionConfig(
        hidden_size=v["hidden_size"],
        num_hidden_layers=v["num_hidden_layers"],
        num_attention_heads=v["num_attention_heads"],
        intermediate_size=v["intermediate_size"],
        hidden_act=v.get("hidden_act", "gelu"),
        norm_type=v.get("norm_type", "layer_norm"),
        layer_norm_eps=v.get("layer_norm_eps", 1e-6),
        attention_bias=v.get("qkv_bias", True),
        use_qk_norm=v.get("qk_normalization", False),
        image_size=size,
        patch_size=v["patch_size"],
        num_channels=v.get("num_channels", 3),
        use_mean_pooling=True,  # InternViT has no final norm
    )
    return InternVLConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=image_token_id,
        downsample_ratio=released.get("downsample_ratio", 0.5),
        vision_feature_layer=released.get("select_layer", -1),
        vision_feature_select_strategy="default",  # drop CLS
        projector_hidden_act="gelu",
        tie_word_embeddings=False,  # the released model has its own lm_head
    )


class InternVLAdapter(Adapter):
    family = "internvl"
    END_OF_TURN = "<|end|>"

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
        v = model.config.vision_config
        side = int(v.image_size[0] // v.patch_size[0] * model.config.downsample_ratio)
        T = DEFAULT_FRAMES
        if pooling_shape is not None:  # the paper's "8-16-16": only T is a choice
            T, H, W = parse_pooling(pooling_shape)
            if (H, W) != (side, side):
                raise ValueError(
                    f"pooling_shape {pooling_shape}: this model gives {side} x {side} tokens per frame"
                )
        self.grid = (T, side, side)

    @classmethod
    def read_facts(cls, path: str, pooling_shape=None) -> Facts | None:
        released = cached_config(path)
        if released is None or released.get("model_type") != "internvl_chat":
            return None
        cfg = native_config(released, 0)
        v = cfg.vision_config
        side = int(v.image_size[0] // v.patch_size[0] * cfg.downsample_ratio)
        T = parse_pooling(pooling_shape)[0] if pooling_shape is not None else DEFAULT_FRAMES
        return Facts(cfg.text_config.num_hidden_layers, cfg.text_config.num_attention_heads, (T, side, side))

    @classmethod
    def from_pretrained(
        cls, path: str, dtype: torch.dtype = torch.float32, device: str = "cpu", **kw
    ) -> "InternVLAdapter":
        """Load a released InternVL (`InternVLChatModel`) checkpoint: hub id or local directory."""
        from transformers import CLIPImageProcessorPil, InternVLForConditionalGeneration
        from transformers.image_utils import PILImageResampling

        local, released = released_config(
            path, "internvl_chat", cls.family, "OpenGVLab/Mini-InternVL-Chat-4B-V1-5"
        )
        tokenizer, image_token = released_tokenizer(local, path, IMG_CONTEXT)
        config = native_config(released, image_token)
        state = native_state_dict(read_safetensors(local))
        model = fill_strictly(InternVLForConditionalGeneration, config, state, path, dtype, device)
        size = config.vision_config.image_size[0]
        processor = CLIPImageProcessorPil(  # one tile per frame: short side to `size`, center crop
            size={"shortest_edge": size},
            crop_size={"height": size, "width": size},
            do_center_crop=True,
            resample=PILImageResampling.BICUBIC,
            image_mean=IMAGENET_MEAN,
            image_std=IMAGENET_STD,
        )
        return cls(model, tokenizer, processor, **kw)

    def decoder(self) -> DecoderParts:
        return DecoderParts.of(self.model.model.language_model, self.model.lm_head)

    # --- video -------------------------------------------------------------------------------
    def pixel_values(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 RGB frames [T, H, W, 3] -> one tile per frame [T, 3, 448, 448]."""
        out = self.image_processor(images=list(frames), return_tensors="pt")
        return out["pixel_values"].to(self.device, self.dtype)

    def video_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Tiles [T, 3, S, S] -> video tokens [T*h*w, d], frame-major then row-major."""
        return tile_features(self.model, pixel_values)

    # --- text --------------------------------------------------------------------------------
    def encode(
        self, q: Question, answer: OpenAnswer | None = None
    ) -> tuple[list[int], TokenLayout, list[int]]:
        if answer is None:
            prompt = build_prompt(
                self.system_prompt,
                q.question,
                q.candidates,
                VIDEO_TEXT,
                PHI3_CHAT,
                QuestionStyle.of(q.params, self.family),
            )
        else:
            system = self.system_prompt if answer.system is None else answer.system
            prompt = build_open_prompt(system, q.question, answer.prompt, VIDEO_TEXT, PHI3_CHAT, answer.label)
        cfg = self.model.config
        n_ctx = cfg.text_config.max_position_embeddings
        return encode(self.tokenizer, prompt, q, cfg.image_token_id, self.grid, answer, n_ctx)

    def prepare(
        self, q: Question, video_tokens: torch.Tensor, answer: OpenAnswer | None = None
    ) -> PreparedSample:
        """Prompt + video tokens [n_video, d] -> decoder inputs, positions 0..N-1, the token layout."""
        return prepare_sample(self, q, video_tokens, answer, self.model.config.image_token_id)

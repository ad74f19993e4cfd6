"""LLaVA-NeXT-Video in transformers' own format (llava-hf `LLaVA-NeXT-Video-7B-hf`, `-34B-hf`).

Video tokens, by the model's own `get_video_features`: each frame through the CLIP tower, the
hidden states of `vision_feature_layer` (CLS dropped), the 24 x 24 patches average-pooled with
stride 2 (`spatial_pool_stride`) to 12 x 12 = 144 tokens, then the projector; frames back to back,
frame-major then row-major, with no separator, replacing the prompt's one `<video>` token (the
processor repeats it once per video token). Positions 0..N-1. Frames: the paper's rule (the
extract_frames rule's `n_frames`, 8 by default); the hub processor's own rule is `frame_sampling:
hf_uniform`.

Preprocessing: the checkpoint's video processor (`video_preprocessor_config.json`, read by
transformers' own class) needs torchvision to run, so its steps run here through PIL: resize the
short side (bicubic), center crop, rescale, normalise, with its sizes, mean and std.

Prompt: what the checkpoint's chat template renders for a system turn and a user turn holding the
video and the paper's multiple-choice question, then the paper's pre-fill `Best option:(`.
"""

from __future__ import annotations

import numpy as np
import torch

from vlmflow.layout import TokenLayout
from vlmflow.models.base import Adapter, DecoderParts, Facts, PreparedSample
from vlmflow.models.chat import VIDEO, template_format, templated_prompt
from vlmflow.models.encoding import check_frame_count, encode, prepare_sample
from vlmflow.models.llava_video import check_image_token
from vlmflow.models.native import chat_template, check_model_type, strict_from_pretrained
from vlmflow.models.weights import cached_config
from vlmflow.open_ended import OpenAnswer
from vlmflow.prompt import MVBENCH_SYSTEM
from vlmflow.question import Question

DEFAULT_FRAMES = 8  # the paper's frames per video


class LlavaNextVideoAdapter(Adapter):
    """Also the base of the llava-hf families whose video path is the same call (LLaVA-OneVision):
    a subclass states its model type, classes, pooled side, video tail and preprocessing."""

    family = "llava_next_video"
    DEVICE_MAP = True
    MODEL_TYPE = "llava_next_video"
    MODEL_CLASS = "LlavaNextVideoForConditionalGeneration"
    CHECKPOINTS = "llava-hf's LLaVA-NeXT-Video checkpoints"
    TAIL = 0  # tokens the model's video features end with that belong to no frame

    @staticmethod
    def pooled_side(config) -> int:
        """Tokens per side of one pooled frame: (image_size / patch_size) / spatial_pool_stride."""
        vision = config.vision_config
        return vision.image_size // vision.patch_size // config.spatial_pool_stride

    @staticmethod
    def video_processor_class():
        from transformers.models.llava_next_video.video_processing_llava_next_video import (
            LlavaNextVideoVideoProcessor,
        )

        return LlavaNextVideoVideoProcessor

    def __init__(
        self,
        model,
        tokenizer,
        video_processor,
        template: str,
        system_prompt: str = MVBENCH_SYSTEM,
        pooling_shape: tuple[int, int, int] | None = None,
        model_id: str = "",
    ):
        self.model = model.eval()
        self.model_id = model_id
        self.tokenizer = tokenizer
        self.video_processor = video_processor
        self.template = template
        self.system_prompt = system_prompt
        cfg = model.config
        side = self.pooled_side(cfg)
        frames = DEFAULT_FRAMES if pooling_shape is None else pooling_shape[0]
        if pooling_shape is not None and tuple(pooling_shape[1:]) != (side, side):
            raise ValueError(
                f"pooling_shape {list(pooling_shape)}: this checkpoint pools every frame to {side} x {side} "
                f"tokens; set pooling_shape to [<frames>, {side}, {side}] or leave it out"
            )
        self.grid = (frames, side, side)
        self.video_id = cfg.video_token_id
        self.video_token = tokenizer.convert_ids_to_tokens(self.video_id)
        # a template that cannot frame the prompt fails at loading, not at the first sample
        where = f"checkpoint {model_id or '(in memory)'}"
        template_format(template, tokenizer, system_prompt, VIDEO, self.video_token, where)

    @classmethod
    def read_facts(cls, path: str, pooling_shape=None) -> Facts | None:
        released = cached_config(path)
        if released is None or released.get("model_type") != cls.MODEL_TYPE:
            return None
        from transformers import AutoConfig

        cfg = AutoConfig.for_model(**released)
        side = cls.pooled_side(cfg)
        frames = DEFAULT_FRAMES if pooling_shape is None else pooling_shape[0]
        text = cfg.text_config
        return Facts(text.num_hidden_layers, text.num_attention_heads, (frames, side, side))

    @classmethod
    def from_pretrained(
        cls,
        path: str,
        dtype: torch.dtype = torch.float32,
        device: str = "cpu",
        device_map: str | dict | None = None,
        **kw,
    ) -> "LlavaNextVideoAdapter":
        """Load a llava-hf checkpoint of the family (hub id or local directory): the model through
        transformers' own class (`MODEL_CLASS`), its tokenizer, video processor settings and chat
        template from the checkpoint's own files."""
        import transformers
        from transformers import AutoTokenizer

        check_model_type(path, cls.MODEL_TYPE, cls.family, cls.CHECKPOINTS)
        model_cls = getattr(transformers, cls.MODEL_CLASS)
        model = strict_from_pretrained(model_cls, path, dtype, device, device_map)
        tokenizer = AutoTokenizer.from_pretrained(path)
        check_image_token(tokenizer, model.config.video_token_id, path)
        processor = cls.video_processor_class().from_pretrained(path)
        cls.check_frame_size(processor, model.config.vision_config.image_size, path)
        return cls(model, tokenizer, processor, chat_template(path, tokenizer), model_id=path, **kw)

    def decoder(self) -> DecoderParts:
        return DecoderParts.of(self.model.model.language_model, self.model.lm_head)

    # --- video -------------------------------------------------------------------------------
    def pixel_values(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 RGB frames [T, H, W, 3] -> processed frames [T, 3, S, S]."""
        check_frame_count(len(frames), self.grid[0])
        out = self.pil_processor()(images=list(frames), return_tensors="pt")
        return out["pixel_values"].to(self.device, self.dtype)

    def video_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Frames [T, 3, S, S] -> video tokens [T*h*w + TAIL, d] through the model's own video path."""
        cfg = self.model.config
        out = self.model.model.get_video_features(
            pixel_values_videos=pixel_values.unsqueeze(0),
            vision_feature_layer=cfg.vision_feature_layer,
            vision_feature_select_strategy=cfg.vision_feature_select_strategy,
        )
        return out.pooler_output[0]  # [T*h*w + TAIL, d]: frame-major, row-major within a frame

    # --- text --------------------------------------------------------------------------------
    def encode(
        self, q: Question, answer: OpenAnswer | None = None
    ) -> tuple[list[int], TokenLayout, list[int]]:
        """The chat template's prompt (one `<video>`), the expanded layout, the option-letter ids; with
        an `answer`, the open-ended prompt and the reference's ids after it."""
        system = self.system_prompt if answer is None or answer.system is None else answer.system
        what = f"{q.sample_id} ({self.model_id or 'model in memory'})"
        prompt = templated_prompt(
            self.template, self.tokenizer, system, q, answer, self.family, self.video_token, what=what
        )
        n_ctx = getattr(self.model.config.text_config, "max_position_embeddings", None)
        return encode(self.tokenizer, prompt, q, self.video_id, self.grid, answer, n_ctx, tail=self.TAIL)

    def prepare(
        self, q: Question, video_tokens: torch.Tensor, answer: OpenAnswer | None = None
    ) -> PreparedSample:
        """Prompt + video tokens [n_video, d] -> decoder inputs, positions 0..N-1, the token layout."""
        return prepare_sample(self, q, video_tokens, answer, self.video_id)

    def pil_processor(self):
        """The video processor's steps, run through PIL (its own class needs torchvision)."""
        return pil_video_processor(self.video_processor)

    @staticmethod
    def check_frame_size(video_processor, image_size: int, path: str) -> None:
        """The processed frames are the size the vision tower's patches tile."""
        crop = video_processor.crop_size
        if video_processor.size.shortest_edge is None or (crop.height, crop.width) != (
            image_size,
            image_size,
        ):
            raise ValueError(
                f"checkpoint {path}: video_preprocessor_config.json gives frames of "
                f"{crop.height} x {crop.width} px (short side {video_processor.size.shortest_edge}), but "
                f"the vision tower takes {image_size} x {image_size} px (config.json "
                "vision_config.image_size); use the video_preprocessor_config.json saved with this checkpoint"
            )


def pil_video_processor(video_processor):
    """The video processor's steps (short side resized, center crop, rescale, normalise) with its own
    settings, as transformers' PIL image processor runs them (the video class needs torchvision)."""
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    p = video_processor
    return CLIPImageProcessorPil(
        do_resize=p.do_resize,
        size={"shortest_edge": p.size.shortest_edge},
        resample=p.resample,
        do_center_crop=p.do_center_crop,
        crop_size={"height": p.crop_size.height, "width": p.crop_size.width},
        do_rescale=p.do_rescale,
        rescale_factor=p.rescale_factor,
        do_normalize=p.do_normalize,
        image_mean=list(p.image_mean),
        image_std=list(p.image_std),
        do_convert_rgb=p.do_convert_rgb,
    )

"""InternVL3 / InternVL3.5 in transformers' own format (`OpenGVLab/InternVL3-8B-hf`,
`OpenGVLab/InternVL3_5-8B-HF`, ...). The paper's Mini-InternVL in InternVL's released format is the
`internvl` family (internvl.py).

Video tokens, by the model's own `get_image_features`: each frame one 448 x 448 tile through
InternViT (`vision_feature_layer` -1, CLS dropped), pixel shuffle 0.5, the MLP projector: 16 x 16 =
256 tokens per frame. The prompt writes the video as transformers' InternVL processor expands the
template's `<video>`: `Frame1: <img>` + 256 `<IMG_CONTEXT>` + `</img>`, frames joined by "\\n", so the
frames are per-frame spans separated by text. "Frame t" is frame t's 256 tokens (`frame_ranges:
tokens`, the default) or, with `frame_ranges: markers`, its whole text: the "\\n" before it,
`Frame{t+1}: <img>`, its tokens and `</img>`, so video -> question leaves no marker text between
the frames open. Positions 0..N-1. Frames: the paper's rule (8); the hub processor's own rule is
`frame_sampling: hf_centered`.

Preprocessing: the checkpoint's `video_preprocessor_config.json` (else its `preprocessor_config.json`)
read as a file, since transformers' InternVL video module imports torchvision: straight resize to its
height x width (448 x 448, bicubic), rescale, normalise with its mean and std (ImageNet's on the
hub), through PIL. Where the file is silent, the video class's own defaults apply (`VIDEO_DEFAULTS`,
checked against its source by the tests).

Prompt: the checkpoint's chat template (Qwen2.5's ChatML on the hub) around a system turn and a user
turn holding the video and the paper's question, then the pre-fill `Best option:(`.
"""

from __future__ import annotations

import numpy as np
import torch

from vlmflow.layout import TokenLayout
from vlmflow.models.base import Adapter, DecoderParts, Facts, PreparedSample
from vlmflow.models.chat import VIDEO, template_format, templated_prompt
from vlmflow.models.encoding import check_frame_count, encode, prepare_sample
from vlmflow.models.internvl import tile_features
from vlmflow.models.llava_video import parse_pooling
from vlmflow.models.native import (
    chat_template,
    check_model_type,
    pil_resize_processor,
    processor_file,
    strict_from_pretrained,
)
from vlmflow.models.weights import cached_config
from vlmflow.open_ended import OpenAnswer
from vlmflow.prompt import MVBENCH_SYSTEM
from vlmflow.question import Question

DEFAULT_FRAMES = 8
# transformers' InternVLVideoProcessor class attributes (its module needs torchvision to import)
VIDEO_DEFAULTS = dict(
    size={"height": 384, "width": 384},
    resample=3,  # bicubic
    rescale_factor=1 / 255,
    image_mean=[0.48145466, 0.4578275, 0.40821073],
    image_std=[0.26862954, 0.26130258, 0.27577711],
    do_resize=True,
    do_rescale=True,
    do_normalize=True,
    do_convert_rgb=True,
)
# the tokenizer's named tokens the processor writes the video with
NAMED_TOKENS = ("start_image_token", "end_image_token", "context_image_token", "video_token")


def tokens_per_side(config) -> int:
    """(image_size / patch_size) x downsample_ratio: tokens per side of one frame."""
    v = config.vision_config
    return int(v.image_size[0] // v.patch_size[0] * config.downsample_ratio)


def video_processor_settings(path: str) -> dict:
    """The checkpoint's video processor settings (`video_preprocessor_config.json`, else
    `preprocessor_config.json`), the video class's defaults where the file is silent."""
    _, given = processor_file(path)
    return {k: given.get(k, v) for k, v in VIDEO_DEFAULTS.items()}


class InternVLHFAdapter(Adapter):
    family = "internvl_hf"
    END_OF_TURN = "<|im_end|>"
    DEVICE_MAP = True
    OPTIONS = {"frame_ranges": ("tokens", "markers")}

    def __init__(
        self,
        model,
        tokenizer,
        processor: dict,
        template: str,
        system_prompt: str = MVBENCH_SYSTEM,
        pooling_shape: tuple[int, int, int] | str | None = None,
        frame_ranges: str = "tokens",
        model_id: str = "",
    ):
        self.model = model.eval()
        self.model_id = model_id
        self.tokenizer = tokenizer
        self.processor = processor
        self.template = template
        self.system_prompt = system_prompt
        self.frame_ranges = frame_ranges
        side = tokens_per_side(model.config)
        T = DEFAULT_FRAMES
        if pooling_shape is not None:  # only the frames are a choice
            T, H, W = parse_pooling(pooling_shape)
            if (H, W) != (side, side):
                raise ValueError(
                    f"pooling_shape {list(parse_pooling(pooling_shape))}: this checkpoint gives {side} x "
                    f"{side} tokens per frame; set pooling_shape to [<frames>, {side}, {side}] or leave "
                    "it out"
                )
        self.grid = (T, side, side)
        self.start, self.end, self.context, self.video_token = (getattr(tokenizer, n) for n in NAMED_TOKENS)
        self.context_id = tokenizer.convert_tokens_to_ids(self.context)
        if self.context_id != model.config.image_token_id:
            raise ValueError(
                f"checkpoint {model_id}: the tokenizer's context_image_token {self.context!r} has id "
                f"{self.context_id}, config.json's image_token_id is {model.config.image_token_id}; use the "
                "tokenizer files saved with this checkpoint"
            )
        # a template that cannot frame the prompt fails at loading, not at the first sample
        where = f"checkpoint {model_id or '(in memory)'}"
        template_format(template, tokenizer, system_prompt, VIDEO, self.video_token, where)

    @classmethod
    def read_facts(cls, path: str, pooling_shape=None) -> Facts | None:
        released = cached_config(path)
        if released is None or released.get("model_type") != "internvl":
            return None
        from transformers import AutoConfig

        cfg = AutoConfig.for_model(**released)
        T = parse_pooling(pooling_shape)[0] if pooling_shape is not None else DEFAULT_FRAMES
        side = tokens_per_side(cfg)
        return Facts(cfg.text_config.num_hidden_layers, cfg.text_config.num_attention_heads, (T, side, side))

    @classmethod
    def from_pretrained(
        cls,
        path: str,
        dtype: torch.dtype = torch.float32,
        device: str = "cpu",
        device_map: str | dict | None = None,
        **kw,
    ) -> "InternVLHFAdapter":
        """Load an InternVL `-hf` checkpoint (hub id or local directory): the model through
        transformers' `InternVLForConditionalGeneration`, strictly; the tokenizer, processor settings
        and chat template from the checkpoint's own files."""
        from transformers import AutoTokenizer, InternVLForConditionalGeneration

        checkpoints = "InternVL's transformers-format checkpoints (e.g. OpenGVLab/InternVL3-8B-hf)"
        hints = {"internvl_chat": " (InternVL's released format is the internvl family)"}
        check_model_type(path, "internvl", cls.family, checkpoints, hints)
        tokenizer = AutoTokenizer.from_pretrained(path)
        missing = [n for n in NAMED_TOKENS if not getattr(tokenizer, n, None)]
        if missing:
            raise ValueError(
                f"checkpoint {path}: its tokenizer names no {missing} (tokenizer_config.json); use the "
                "tokenizer files of its hub repository"
            )
        model = strict_from_pretrained(InternVLForConditionalGeneration, path, dtype, device, device_map)
        processor = video_processor_settings(path)
        size = model.config.vision_config.image_size
        if (processor["size"].get("height"), processor["size"].get("width")) != tuple(size):
            raise ValueError(
                f"checkpoint {path}: its processor file gives frames of {processor['size']}, but the vision "
                f"tower takes {size[0]} x {size[1]} px (config.json vision_config.image_size); use the "
                "processor files saved with this checkpoint"
            )
        return cls(model, tokenizer, processor, chat_template(path, tokenizer), model_id=path, **kw)

    def decoder(self) -> DecoderParts:
        return DecoderParts.of(self.model.model.language_model, self.model.lm_head)

    # --- video -------------------------------------------------------------------------------
    def pixel_values(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 RGB frames [T, H, W, 3] -> one tile per frame [T, 3, S, S]."""
        check_frame_count(len(frames), self.grid[0])
        p = self.processor
        size = (p["size"]["height"], p["size"]["width"])
        switches = {k: p[k] for k in ("do_resize", "do_rescale", "do_normalize", "do_convert_rgb")}
        pil = pil_resize_processor(
            size, p["resample"], p["rescale_factor"], p["image_mean"], p["image_std"], **switches
        )
        return pil(images=list(frames), return_tensors="pt")["pixel_values"].to(self.device, self.dtype)

    def video_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Tiles [T, 3, S, S] -> video tokens [T*h*w, d], frame-major then row-major."""
        return tile_features(self.model, pixel_values)

    # --- text --------------------------------------------------------------------------------
    def frame_texts(self) -> list[str]:
        """Each frame as the processor writes it, with one `<IMG_CONTEXT>` for its tokens."""
        return [f"Frame{t + 1}: {self.start}{self.context}{self.end}" for t in range(self.grid[0])]

    def encode(
        self, q: Question, answer: OpenAnswer | None = None
    ) -> tuple[list[int], TokenLayout, list[int]]:
        """The chat template's prompt with the video expanded per frame, the layout (per-frame
        spans; with `frame_ranges: markers` each frame's block its whole text), the option-letter
        ids; with an `answer`, the open-ended prompt and the reference's ids after it."""
        system = self.system_prompt if answer is None or answer.system is None else answer.system
        what = f"{q.sample_id} ({self.model_id or 'model in memory'})"
        video = "\n".join(self.frame_texts())
        prompt = templated_prompt(
            self.template, self.tokenizer, system, q, answer, self.family, self.video_token, video, what
        )
        blocks = self.frame_blocks(prompt.placeholder[0]) if self.frame_ranges == "markers" else None
        n_ctx = getattr(self.model.config.text_config, "max_position_embeddings", None)
        return encode(self.tokenizer, prompt, q, self.context_id, self.grid, answer, n_ctx, True, blocks)

    def frame_blocks(self, start: int) -> list[tuple[int, int]]:
        """Character spans of each frame's whole text from the video's start: the "\\n" before it
        (after the first), `Frame{t}: <img>`, its placeholder and `</img>`."""
        spans, at = [], start
        for t, text in enumerate(self.frame_texts()):
            lead = 1 if t else 0  # the "\n" joining it to the frame before
            spans.append((at, at + lead + len(text)))
            at += lead + len(text)
        return spans

    def prepare(
        self, q: Question, video_tokens: torch.Tensor, answer: OpenAnswer | None = None
    ) -> PreparedSample:
        """Prompt + video tokens [n_video, d] -> decoder inputs, positions 0..N-1, the token layout."""
        return prepare_sample(self, q, video_tokens, answer, self.context_id)

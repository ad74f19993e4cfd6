"""VideoLLaMA3-7B (used as released), loaded from its released format into transformers' own
VideoLLaMA3 classes.

Video tokens: each frame resized to a square of (budget / T) merged tokens (the paper's 1152 for 8
frames: 336 x 336 -> 24 x 24 patches of 14 -> 2 x 2 merge -> 12 x 12 tokens), through the
SigLIP-based encoder and the MLP projector; no token compression (the authors switch it off). The
prompt is ChatML with no system turn: `Time {t}s:` before each frame's tokens (the frame's time as
the released loader gives it, rounded as the released chat template rounds it: `round(t, 1)` of a
numpy or a Python float), commas between frames, a newline, the question and the answer
instruction; the assistant turn is left empty (the last token is the newline after "assistant").

Where the public sources disagree, a switch (recorded in every result row's provenance):
- `vision_attention`: "per_frame" (transformers' classes and the released flash-attention path:
  each frame attends within itself) or "released_eager" (the released eager code, which the authors
  loaded: the frame mask is *added*, so every patch attends to every frame, with +1 on the logits
  within its own frame);
- `frame_ranges`: "authors" (the authors' frame ranges, which take in the time text and the commas
  between frames) or "tokens" (each frame's image tokens only).
"""

from __future__ import annotations

import json

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
from vlmflow.prompt import CHATML_CHAT, QuestionStyle, build_open_prompt, build_prompt
from vlmflow.question import Question

IMAGE_TOKEN = "<image>"
PATCH, MERGE = 14, 2
DEFAULT_GRID = (8, 12, 12)  # the paper's budget of 1152 visual tokens for 8 frames
# released name -> transformers' VideoLlama3ForConditionalGeneration name
RENAMES = Renames(
    [
        ("model.vision_encoder.", "model.vision_model."),
        ("model.mm_projector.", "model.projector."),
        ("model.embed_tokens.", "model.language_model.embed_tokens."),
        ("model.layers.", "model.language_model.layers."),
        ("model.norm.", "model.language_model.norm."),
        ("lm_head.", "lm_head."),
    ]
)
RELEASED_EAGER = "vlmflow_released_vision_eager"


def native_state_dict(released: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in released.items():
        try:
            out[RENAMES.native(key)] = value
        except ValueError:
            raise ValueError(
                f"released weight {key!r} has no place in transformers' VideoLLaMA3 model"
            ) from None
    return out


def native_config(released: dict, image_token_id: int):
    """The released config.json (`videollama3_qwen2`: Qwen2 fields at the top level, the encoder's
    in `vision_encoder_config`) -> VideoLlama3Config."""
    from transformers import Qwen2Config, VideoLlama3Config, VideoLlama3VisionConfig

    own = {  # `use_token_compression` is dropped: the adapter never compresses, as the authors
        "vision_encoder",
        "vision_encoder_config",
        "mm_projector_type",
        "use_token_compression",
        "image_token_index",
        "architectures",
        "auto_map",
        "model_type",
        "rope_theta",
        "rope_scaling",
        "_name_or_path",
        "attn_implementation",  # the workflow chooses its own
        "_attn_implementation",
        "torch_dtype",
        "dtype",
    }
    if released.get("rope_scaling") or released.get("tie_word_embeddings"):
        raise ValueError(
            "this adapter reads VideoLLaMA3-7B's settings: plain RoPE, untied lm_head; the checkpoint "
            f"has rope_scaling={released.get('rope_scaling')}, "
            f"tie_word_embeddings={released.get('tie_word_embeddings')}"
        )
    rope = {"rope_type": "default", "rope_theta": released.get("rope_theta", 1e6)}
    text = Qwen2Config(**{k: v for k, v in released.items() if k not in own}, rope_parameters=rope)
    if released.get("mm_projector_type", "mlp2x_gelu") != "mlp2x_gelu":
        raise ValueError(f"projector {released['mm_projector_type']!r}: the released 7B uses 'mlp2x_gelu'")
    vision = {k: v for k, v in released["vision_encoder_config"].items() if k not in own}
    return VideoLlama3Config(
        text_config=text,
        vision_config=VideoLlama3VisionConfig(**vision),
        image_token_id=image_token_id,
        video_token_id=image_token_id,
        tie_word_embeddings=False,
    )


def _released_eager_attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """The released eager vision attention: softmax(q k^T * scale + in_frame) v over all frames,
    in_frame = 1 for a pair of patches of the same frame, else 0 (nothing is masked)."""
    # query/key/value [1, heads, L, head_dim]; in_frame [L, L]
    w = torch.matmul(query, key.transpose(-1, -2)) * scaling + kwargs["in_frame"].to(query.dtype)
    w = torch.softmax(w.float(), dim=-1).to(query.dtype)
    return torch.matmul(w, value).transpose(1, 2).contiguous(), w


def _register_released_eager() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(RELEASED_EAGER, _released_eager_attention)


class VideoLlama3Adapter(Adapter):
    family = "videollama3"
    END_OF_TURN = "<|im_end|>"
    OPTIONS = {
        "vision_attention": ("released_eager", "per_frame"),
        "frame_ranges": ("authors", "tokens"),
    }

    def __init__(
        self,
        model,
        tokenizer,
        image_mean: list[float],
        image_std: list[float],
        pooling_shape: tuple[int, int, int] | str | None = None,
        vision_attention: str = "released_eager",
        frame_ranges: str = "authors",
        system_prompt: str | None = None,
    ):
        self.settings_of(dict(vision_attention=vision_attention, frame_ranges=frame_ranges))
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.mean = torch.tensor(image_mean).view(1, 3, 1, 1)
        self.std = torch.tensor(image_std).view(1, 3, 1, 1)
        self.vision_attention, self.frame_ranges = vision_attention, frame_ranges
        self.grid = parse_pooling(pooling_shape or DEFAULT_GRID)
        self.image_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
        if vision_attention == "released_eager":
            _register_released_eager()
        # set either way: the vision config is the model's, and another adapter may have changed it
        implementation = RELEASED_EAGER if vision_attention == "released_eager" else "sdpa"
        self.model.model.vision_model.set_attn_implementation(implementation)
        # system_prompt is not used: the paper's VideoLLaMA3 prompt has no system turn

    @classmethod
    def read_facts(cls, path: str, pooling_shape=None) -> Facts | None:
        released = cached_config(path)
        if released is None or released.get("model_type") != "videollama3_qwen2":
            return None
        text = native_config(released, 0).text_config
        return Facts(
            text.num_hidden_layers, text.num_attention_heads, parse_pooling(pooling_shape or DEFAULT_GRID)
        )

    @classmethod
    def from_pretrained(
        cls, path: str, dtype: torch.dtype = torch.float32, device: str = "cpu", **kw
    ) -> "VideoLlama3Adapter":
        """Load the released VideoLLaMA3 (`videollama3_qwen2`) checkpoint: hub id or local directory."""
        from transformers import VideoLlama3ForConditionalGeneration

        local, released = released_config(path, "videollama3_qwen2", cls.family, "DAMO-NLP-SG/VideoLLaMA3-7B")
        tokenizer, image_id = released_tokenizer(local, path, IMAGE_TOKEN)
        config = native_config(released, image_id)
        state = native_state_dict(read_safetensors(local))
        model = fill_strictly(VideoLlama3ForConditionalGeneration, config, state, path, dtype, device)
        proc_file = local / "preprocessor_config.json"
        proc = json.loads(proc_file.read_text())
        for key, want in (("patch_size", PATCH), ("merge_size", MERGE)):
            if proc.get(key, want) != want:
                raise ValueError(
                    f"checkpoint {path}: {proc_file} has {key} {proc[key]}, "
                    f"but VideoLLaMA3's vision encoder takes {want}; "
                    "use the preprocessor_config.json saved with this checkpoint"
                )
        return cls(model, tokenizer, proc["image_mean"], proc["image_std"], **kw)

    def decoder(self) -> DecoderParts:
        return DecoderParts.of(self.model.model.language_model, self.model.lm_head)

    # --- video -------------------------------------------------------------------------------
    def pixel_values(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 RGB frames [T, H, W, 3] -> normalised frames [T, 3, 28 h, 28 w] (PIL bicubic), h x w
        the grid's tokens per frame."""
        from PIL import Image

        size = (self.grid[2] * PATCH * MERGE, self.grid[1] * PATCH * MERGE)  # PIL: (width, height)
        x = np.stack([np.asarray(Image.fromarray(f).resize(size, Image.BICUBIC)) for f in frames])
        x = torch.from_numpy(x).permute(0, 3, 1, 2).float()
        return ((x / 255 - self.mean) / self.std).to(self.device, self.dtype)

    def video_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Frames [T, 3, 28 h, 28 w] -> video tokens [T*h*w, d], frame-major then row-major."""
        T, C, Hp, Wp = pixel_values.shape
        gh, gw = Hp // PATCH, Wp // PATCH
        # patches in the encoder's order: (frame, row block, col block, row, col), each C x 14 x 14
        p = pixel_values.reshape(T, C, gh // MERGE, MERGE, PATCH, gw // MERGE, MERGE, PATCH)
        p = p.permute(0, 2, 5, 3, 6, 1, 4, 7).reshape(T * gh * gw, C * PATCH * PATCH)
        grid = torch.tensor([[T, gh, gw]], device=p.device)
        extra = {}
        if self.vision_attention == "released_eager":  # one segment over all frames, +1 within a frame
            frame = torch.arange(T, device=p.device).repeat_interleave(gh * gw)
            extra = dict(
                cu_seqlens=torch.tensor([0, T * gh * gw], dtype=torch.int32, device=p.device),
                in_frame=(frame[:, None] == frame[None, :]).float(),
            )
        out = self.model.model.get_video_features(
            p, grid, torch.tensor([MERGE], device=p.device), **extra
        ).pooler_output
        return out[0]  # [T*h*w, d]

    # --- text --------------------------------------------------------------------------------
    @staticmethod
    def time_text(t: float, numpy_value: bool) -> str:
        """A frame's time as the released chat template writes it (`t | round(1) | string`): Python's
        rounding for a Python float, numpy's for the numpy floats its ffmpeg loader gives (1.05 reads
        "1.1" as a Python float, "1.0" as a numpy one)."""
        return str(round(np.float64(t) if numpy_value else float(t), 1))

    def video_text(self, q: Question) -> tuple[str, list[tuple[int, int]]]:
        """The video's text and, per frame, the character span the authors' ranges give it (from its
        comma, or the video start, to the next comma, or the video end)."""
        times = q.params.get("frame_times")
        T = self.grid[0]
        if times is None or len(times) != T:
            raise ValueError(
                f"{q.sample_id}: VideoLLaMA3's prompt needs the {T} sampled frames' times "
                "(params['frame_times'], written by the extract_frames rule)"
            )
        numpy_value = bool(q.params.get("frame_times_numpy", False))
        text, spans = "", []
        for k, t in enumerate(times):
            start = len(text)
            text += ("," if k else "") + f"Time {self.time_text(t, numpy_value)}s:" + IMAGE_TOKEN
            spans.append((start, len(text)))
        return text, spans

    def encode(
        self, q: Question, answer: OpenAnswer | None = None
    ) -> tuple[list[int], TokenLayout, list[int]]:
        video, spans = self.video_text(q)
        if answer is None:
            prompt = build_prompt(
                "", q.question, q.candidates, video, CHATML_CHAT, QuestionStyle.of(q.params, self.family)
            )
        else:
            prompt = build_open_prompt("", q.question, answer.prompt, video, CHATML_CHAT, answer.label)
        offset = prompt.placeholder[0]
        blocks = [(a + offset, b + offset) for a, b in spans] if self.frame_ranges == "authors" else None
        n_ctx = self.model.config.text_config.max_position_embeddings
        return encode(self.tokenizer, prompt, q, self.image_id, self.grid, answer, n_ctx, True, blocks)

    def prepare(
        self, q: Question, video_tokens: torch.Tensor, answer: OpenAnswer | None = None
    ) -> PreparedSample:
        """Prompt + video tokens [n_video, d] -> decoder inputs, 1-D positions 0..N-1, the token layout."""
        return prepare_sample(self, q, video_tokens, answer, self.image_id)

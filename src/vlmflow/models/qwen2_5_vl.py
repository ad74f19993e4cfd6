"""Qwen2.5-VL in transformers' own format (`Qwen/Qwen2.5-VL-3B-Instruct`, `-7B-`, `-72B-`).

Video tokens, by the model's own `get_video_features`: the frames resized to the checkpoint's
pixel budget (multiples of 28, aspect kept: the grid is per sample), patches of 14 x 14 pixels x 2
frames (temporal patch size 2), the vision tower, 2 x 2 patches merged into one token. One token
covers two sampled frames: "frame t" of every experiment is temporal group t (frames 2t and 2t + 1),
so the paper's 8 frames give 4 groups and 16 frames (a dataset's `n_frames: 16`) give 8. The
prompt's `<|vision_start|><|video_pad|><|vision_end|>` becomes groups x h x w `<|video_pad|>`
tokens, groups back to back, row-major within a group; `<|vision_start|>` and `<|vision_end|>` are
text.

Positions: 3-D (temporal, height, width) from the model's own `get_rope_index`, given the token
types and `second_per_grid_ts` = 2 / (the sampled frames' real rate, from their recorded times): a
video group's temporal position advances by `tokens_per_second` x its seconds. The text after the
video continues as the installed transformers' rope index places it (5.x: the video's first
position + max(h, w); 4.49 and Qwen's own code: the video's largest position + 1); `text_after_video`
records which one ran, in every row.

Preprocessing: the checkpoint's `video_preprocessor_config.json`, else its `preprocessor_config.json`
(as transformers falls back), read as files since transformers' Qwen2-VL video class needs
torchvision: the pixel budget (`size.shortest_edge` / `longest_edge`, or `min_pixels` / `max_pixels`),
patch, merge and temporal patch sizes, mean and std; transformers' own `smart_resize`, a bicubic
resize through PIL, rescale, normalise, then the video class's patch order.

Prompt: the checkpoint's chat template (Qwen2.5-VL's ChatML on the hub) around a system turn and a
user turn holding the video and the paper's question, then the pre-fill `Best option:(`.
Attention backends: sdpa and eager (transformers' Qwen2.5-VL text model refuses flex attention).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from vlmflow.layout import TokenLayout
from vlmflow.models.base import Adapter, DecoderParts, Facts, PreparedSample
from vlmflow.models.chat import VIDEO, template_format, templated_prompt
from vlmflow.models.encoding import embed_prompt, encode
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

DEFAULT_FRAMES = 8  # the paper's frames per clip: 4 temporal groups
VIDEO_TEXT = "<|vision_start|><|video_pad|><|vision_end|>"
# transformers' Qwen2VLVideoProcessor class attributes (its module needs torchvision to run)
VIDEO_DEFAULTS = dict(
    size={"shortest_edge": 128 * 28 * 28, "longest_edge": 28 * 28 * 768},
    resample=3,  # bicubic
    rescale_factor=1 / 255,
    image_mean=[0.48145466, 0.4578275, 0.40821073],
    image_std=[0.26862954, 0.26130258, 0.27577711],
    patch_size=14,
    temporal_patch_size=2,
    merge_size=2,
)


def video_processor_settings(path: str, defaults: dict = VIDEO_DEFAULTS, pixel_keys: bool = True) -> dict:
    """The checkpoint's video processor settings (`video_preprocessor_config.json`, else
    `preprocessor_config.json`), the class's `defaults` where the file is silent; with `pixel_keys`,
    `min_pixels` / `max_pixels` read as the pixel budget, as Qwen2-VL's video class reads them."""
    name, given = processor_file(path)
    out = {k: given.get(k, v) for k, v in defaults.items()}
    size = dict(out["size"])
    if pixel_keys and given.get("min_pixels") is not None:
        size["shortest_edge"] = given["min_pixels"]
    if pixel_keys and given.get("max_pixels") is not None:
        size["longest_edge"] = given["max_pixels"]
    return dict(out, size=size, file=name)


def text_after_video_rule(model) -> str:
    """Which position the installed transformers gives the first text token after a video, found by
    running its rope index on 3 one-token groups between two text tokens: "start+max(h,w)"
    (transformers 5) or "max+1" (transformers 4.49 and Qwen's own code: after the largest video
    position, here the last group's temporal one)."""
    cfg = model.config
    merge, tps = cfg.vision_config.spatial_merge_size, cfg.vision_config.tokens_per_second
    ids = torch.tensor([[0] + [cfg.video_token_id] * 3 + [0]])
    types = torch.tensor([[0, 2, 2, 2, 0]])
    pos, _ = model.model.get_rope_index(
        ids, types, None, torch.tensor([[3, merge, merge]]), torch.tensor([1.0])
    )
    after = int(pos[0, 0, -1])
    rules = {1 + 1: "start+max(h,w)", 1 + int(2 * tps) + 1: "max+1"}
    return rules.get(after, f"first text position {after} after a video at 1")


class Qwen25VLAdapter(Adapter):
    family = "qwen2_5_vl"
    END_OF_TURN = "<|im_end|>"
    DEVICE_MAP = True
    ATTENTION_BACKENDS = ("sdpa", "eager")  # transformers' Qwen2.5-VL text model refuses flex
    GRID_PER_SAMPLE = True
    MODEL_TYPE = "qwen2_5_vl"
    MODEL_CLASS = "Qwen2_5_VLForConditionalGeneration"
    CHECKPOINTS = "Qwen2.5-VL's transformers-format checkpoints"
    VIDEO_DEFAULTS = VIDEO_DEFAULTS
    PIXEL_KEYS = True  # its video class reads `min_pixels` / `max_pixels` as the budget

    def __init__(
        self,
        model,
        tokenizer,
        processor: dict,
        template: str,
        system_prompt: str = MVBENCH_SYSTEM,
        pooling_shape=None,
        model_id: str = "",
        **options,
    ):
        if pooling_shape is not None:
            raise ValueError(
                f"pooling_shape {list(pooling_shape)}: a {self.family} sample's grid follows its frames "
                "and their size (the checkpoint's pixel budget); leave pooling_shape out and set the "
                "frames with n_frames (two per temporal group)"
            )
        for name, value in self.settings_of(options).items():  # the family's own switches
            setattr(self, name, value)
        self.model = model.eval()
        self.model_id = model_id
        self.tokenizer = tokenizer
        self.processor = processor
        self.template = template
        self.system_prompt = system_prompt
        self.video_id = model.config.video_token_id
        self.temporal = processor["temporal_patch_size"]
        self.factor = processor["patch_size"] * processor["merge_size"]
        self.grid = (DEFAULT_FRAMES // self.temporal, *self.grid_of(self.default_size(), DEFAULT_FRAMES))
        self.rope_rules = self.installed_rope_rules(model)
        # a template that cannot frame the prompt fails at loading, not at the first sample
        where = f"checkpoint {model_id or '(in memory)'}"
        template_format(template, tokenizer, system_prompt, VIDEO, VIDEO_TEXT, where)

    @property
    def n_frames(self) -> int:
        return self.grid[0] * self.temporal

    @staticmethod
    def installed_rope_rules(model) -> dict:
        """The installed transformers' rope-index rules that change every result: where the text
        after a video starts (`text_after_video_rule`)."""
        return {"text_after_video": text_after_video_rule(model)}

    @property
    def settings(self) -> dict:
        """The family's switches and the installed rope rules: recorded with each row."""
        return {**super().settings, **self.rope_rules}

    @classmethod
    def read_facts(cls, path: str, pooling_shape=None) -> Facts | None:
        released = cached_config(path)
        if released is None or released.get("model_type") != cls.MODEL_TYPE:
            return None
        from transformers import AutoConfig

        text = AutoConfig.for_model(**released).text_config
        return Facts(text.num_hidden_layers, text.num_attention_heads, None)  # the grid is per sample

    @classmethod
    def from_pretrained(
        cls,
        path: str,
        dtype: torch.dtype = torch.float32,
        device: str = "cpu",
        device_map: str | dict | None = None,
        **kw,
    ) -> "Qwen25VLAdapter":
        """Load a checkpoint of the family (hub id or local directory) through transformers' own class,
        strictly; the tokenizer, processor settings and chat template from its own files."""
        import transformers
        from transformers import AutoTokenizer

        check_model_type(path, cls.MODEL_TYPE, cls.family, cls.CHECKPOINTS)
        model = strict_from_pretrained(
            getattr(transformers, cls.MODEL_CLASS), path, dtype, device, device_map
        )
        tokenizer = AutoTokenizer.from_pretrained(path)
        if tokenizer.convert_tokens_to_ids("<|video_pad|>") != model.config.video_token_id:
            raise ValueError(
                f"checkpoint {path}: the tokenizer's <|video_pad|> is not config.json's video_token_id "
                f"{model.config.video_token_id}; use the tokenizer files saved with this checkpoint"
            )
        processor = video_processor_settings(path, cls.VIDEO_DEFAULTS, cls.PIXEL_KEYS)
        return cls(model, tokenizer, processor, chat_template(path, tokenizer), model_id=path, **kw)

    def decoder(self) -> DecoderParts:
        return DecoderParts.of(self.model.model.language_model, self.model.lm_head)

    # --- video -------------------------------------------------------------------------------
    def default_size(self) -> tuple[int, int]:
        """A square frame at the budget's upper end: the grid the config's checks assume."""
        side = int(math.sqrt(self.processor["size"]["longest_edge"]))
        return side, side

    def resized(self, height: int, width: int, n_frames: int) -> tuple[int, int]:
        """Frames of height x width -> their size for the vision tower: transformers' own `smart_resize`
        with the checkpoint's pixel budget, which Qwen2.5-VL spends per frame (`n_frames` unused)."""
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

        size = self.processor["size"]
        return smart_resize(height, width, self.factor, size["shortest_edge"], size["longest_edge"])

    def grid_of(self, frame_size: tuple[int, int], n_frames: int) -> tuple[int, int]:
        """Tokens per row and column of one temporal group for `n_frames` frames of `frame_size`
        (height, width)."""
        h, w = self.resized(*frame_size, n_frames)
        return h // self.factor, w // self.factor

    def pixel_values(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 RGB frames [T, H, W, 3] -> resized, rescaled, normalised frames [T', 3, h, w], the last
        frame repeated where T is odd (as the processor pads to whole temporal groups)."""
        p = self.processor
        h, w = self.resized(*frames.shape[1:3], len(frames))
        pil = pil_resize_processor(
            (h, w), p["resample"], p["rescale_factor"], p["image_mean"], p["image_std"]
        )
        x = pil(images=list(frames), return_tensors="pt")["pixel_values"]  # [T, 3, h, w]
        if pad := -len(x) % self.temporal:
            x = torch.cat([x, x[-1:].expand(pad, -1, -1, -1)])
        return x.to(self.device, self.dtype)

    def video_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Frames [T', 3, h, w] -> video tokens [groups*gh*gw, d] through the model's own
        `get_video_features` (the video class's patch order), group-major then row-major."""
        p = self.processor
        patches, grid_thw = patchify(pixel_values, p["patch_size"], p["merge_size"], self.temporal)
        out = self.model.model.get_video_features(pixel_values_videos=patches, video_grid_thw=grid_thw)
        return out.pooler_output[0]

    # --- text --------------------------------------------------------------------------------
    def recorded_frames(self, q: Question) -> tuple[list[int], list[float]]:
        """The frames' size (height, width) and times that extract_frames records with a sample."""
        size, times = q.params.get("frame_size"), q.params.get("frame_times")
        if size is None or times is None:
            raise ValueError(
                f"{q.sample_id}: the {self.family} prompt needs the frames' size and times "
                "(params['frame_size'], params['frame_times'], written by the extract_frames rule)"
            )
        return size, times

    def sample_grid(self, q: Question, n_video: int | None = None) -> tuple[int, int, int]:
        """(groups, h, w) of a sample: its frames' size (recorded by extract_frames) through the pixel
        budget, and its frames (groups = video tokens / (h * w), or the recorded frames)."""
        size, times = self.recorded_frames(q)
        h, w = self.grid_of(tuple(size), len(times))
        groups = -(-len(times) // self.temporal) if n_video is None else n_video // (h * w)
        return groups, h, w

    def seconds_per_group(self, q: Question) -> float:
        """`second_per_grid_ts`: temporal patch size / the sampled frames' rate, the rate from their
        recorded times (frames evenly spaced by `frame_sampling`)."""
        times = q.params["frame_times"]
        if len(times) < 2 or times[-1] <= times[0]:
            raise ValueError(
                f"{q.sample_id}: frame times {times} give no frame rate for the video's positions"
            )
        return self.temporal * (times[-1] - times[0]) / (len(times) - 1)

    def encode(
        self, q: Question, answer: OpenAnswer | None = None, grid: tuple[int, int, int] | None = None
    ) -> tuple[list[int], TokenLayout, list[int]]:
        """The chat template's prompt (one `<|video_pad|>`), the expanded layout in the sample's grid,
        the option-letter ids; with an `answer`, the open-ended prompt and the reference's ids."""
        return self.encode_video(q, answer, grid or self.sample_grid(q), VIDEO_TEXT)

    def encode_video(
        self,
        q: Question,
        answer: OpenAnswer | None,
        grid: tuple[int, int, int],
        video: str,
        per_frame: bool = False,
        blocks: list[tuple[int, int]] | None = None,
    ) -> tuple[list[int], TokenLayout, list[int]]:
        """`encode` with the template's video written as `video` (one `<|video_pad|>`, or one per
        group with `per_frame`); `blocks`: each frame's character span in `video`, where the
        knockouts' frames take in more than its tokens."""
        system = self.system_prompt if answer is None or answer.system is None else answer.system
        what = f"{q.sample_id} ({self.model_id or 'model in memory'})"
        prompt = templated_prompt(
            self.template, self.tokenizer, system, q, answer, self.family, VIDEO_TEXT, video, what
        )
        if blocks is not None:
            at = prompt.placeholder[0]
            blocks = [(a + at, b + at) for a, b in blocks]
        n_ctx = getattr(self.model.config.text_config, "max_position_embeddings", None)
        return encode(self.tokenizer, prompt, q, self.video_id, grid, answer, n_ctx, per_frame, blocks)

    def positions(self, ids: list[int], layout: TokenLayout, q: Question) -> torch.Tensor:
        """[3, 1, N] from the model's own rope index: the expanded ids, their token types (2 on the
        video) and the group's seconds."""
        T, H, W = layout.grid
        merge = self.processor["merge_size"]
        expanded, types = rope_inputs(ids, layout, self.video_id)
        grid_thw = torch.tensor([[T, H * merge, W * merge]])
        seconds = torch.tensor([self.seconds_per_group(q)])
        pos, _ = self.model.model.get_rope_index(expanded, types, None, grid_thw, seconds)
        return pos

    def prepare(
        self, q: Question, video_tokens: torch.Tensor, answer: OpenAnswer | None = None
    ) -> PreparedSample:
        """Prompt + cached video features (`split_features`: the tokens [groups*h*w, d] and any layer
        additions) -> decoder inputs, 3-D positions [3, 1, N], the layout."""
        grid = self.sample_grid(q, len(video_tokens))
        ids, layout, targets = self.encode(q, answer, grid)
        tokens, additions = self.split_features(video_tokens.to(self.device))
        embeds = embed_prompt(self.decoder().embed_tokens, ids, self.video_id, layout, tokens)
        return PreparedSample(
            inputs_embeds=embeds.unsqueeze(0),
            position_ids=self.positions(ids, layout, q).to(self.device),
            layout=layout,
            gt_token=targets[q.answer_index] if answer is None else targets[0],
            option_tokens=targets if answer is None else [],
            video_tokens=video_tokens,
            layer_additions=additions,
        )

    @staticmethod
    def split_features(video: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Cached video features -> the video tokens [n_video, d] and the layer additions (none)."""
        return video, ()


def rope_inputs(ids: list[int], layout: TokenLayout, video_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The prompt's ids with the video placeholders expanded to the layout's video tokens, [1, N], and
    the token types the rope index reads, [1, N] (2 on the video, 0 elsewhere)."""
    expanded = torch.full((1, layout.n_tokens), video_id)
    types = torch.zeros(1, layout.n_tokens, dtype=torch.int)
    video = torch.as_tensor(layout.indices("video"))
    types[0, video] = 2
    text = torch.ones(layout.n_tokens, dtype=torch.bool)
    text[video] = False
    expanded[0, text] = torch.tensor([i for i in ids if i != video_id])
    return expanded, types


def patchify(
    frames: torch.Tensor, patch: int, merge: int, temporal: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames [T, C, h, w] (T a multiple of `temporal`) -> patches [groups*ph*pw, C*temporal*patch*patch]
    in the order of transformers' Qwen2-VL video class (merge blocks of 2 x 2 patches together),
    and `video_grid_thw` [1, 3] = (groups, ph, pw)."""
    T, C, h, w = frames.shape
    g, ph, pw = T // temporal, h // patch, w // patch
    x = frames.reshape(g, temporal, C, ph // merge, merge, patch, pw // merge, merge, patch)
    x = x.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)  # g, ph/m, pw/m, m, m, C, temporal, patch, patch
    return x.reshape(g * ph * pw, C * temporal * patch * patch), torch.tensor([[g, ph, pw]])

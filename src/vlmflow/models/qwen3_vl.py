"""Qwen3-VL in transformers' own format (`Qwen/Qwen3-VL-8B-Instruct`, `-2B-`, `-4B-`, `-32B-`).

Video tokens, by the model's own `get_video_features`: the frames resized to the checkpoint's pixel
budget, which Qwen3-VL spends on the whole clip (transformers' Qwen3-VL `smart_resize`: multiples of
32, aspect kept, frames x height x width within `size`; `cap_pixels_per_frame` as the processor
file says), patches of 16 x 16 pixels x 2 frames (temporal patch size 2), the vision tower, 2 x 2
patches merged into one token. One token covers two sampled frames: "frame t" of every experiment
is temporal group t, as for Qwen2.5-VL. The prompt writes the video as transformers' Qwen3-VL
processor expands the template's `<|vision_start|><|video_pad|><|vision_end|>`: per group its time
`<{t:.1f} seconds>` (the mean time of its two frames, from their recorded times), then
`<|vision_start|>`, h x w `<|video_pad|>`, `<|vision_end|>`. The video is per-group spans separated
by text. "Frame t" is group t's tokens (`frame_ranges: tokens`, the default: the time text and the
vision markers are text of no frame) or, with `frame_ranges: markers`, its whole text, time
included.

Positions: 3-D (interleaved M-RoPE) from the model's own `get_rope_index`, given the token types:
each group is one temporal step at the running position (the time is in the text, not in the
positions), and the text after a group continues at its start + max(h, w), where Qwen's own rule
(the group's largest position + 1) agrees.

DeepStack: the vision tower's merged features of some of its layers (`deepstack_visual_indexes`) are
added to the video positions' hidden states after the first decoder layers, one level each. This
path runs outside attention, so no attention knockout blocks it: with `deepstack: keep` (the
default, the model as released) it stays open in every run, clean and knocked out; with
`deepstack: drop` it is left out of all of them (the model's own forward without it), so the two
measure it as its own ablation. The switch is recorded in every row. The cached video features hold
both: [n_video, 1 + levels, d] (the merger's tokens, then each DeepStack level).

Preprocessing: the checkpoint's `video_preprocessor_config.json`, else its `preprocessor_config.json`,
read as files since transformers' Qwen3-VL video class needs torchvision; its class defaults where
the file is silent; a bicubic resize through PIL, rescale, normalise (mean and std 0.5), the video
class's patch order. Frames: the paper's rule (8 frames: 4 groups; `n_frames: 16` gives 8), or the
processor's own with `frame_sampling: fps2`.

Prompt: the checkpoint's chat template (Qwen3-VL's ChatML, no default system turn) around a system
turn and a user turn holding the video and the paper's question, then the pre-fill `Best option:(`.
Attention backends: sdpa and eager (transformers' Qwen3-VL text model refuses flex attention).
"""

from __future__ import annotations

import math

import torch

from vlmflow.layout import TokenLayout
from vlmflow.models.base import PreparedSample
from vlmflow.models.qwen2_5_vl import VIDEO_TEXT, Qwen25VLAdapter, patchify, rope_inputs
from vlmflow.open_ended import OpenAnswer
from vlmflow.question import Question

DEFAULT_FRAMES = 8  # the paper's frames per clip: 4 temporal groups
# transformers' Qwen3VLVideoProcessor class attributes (its module needs torchvision to run)
VIDEO_DEFAULTS = dict(
    size={"shortest_edge": 128 * 32 * 32, "longest_edge": 32 * 32 * 768},
    resample=3,  # bicubic
    rescale_factor=1 / 255,
    image_mean=[0.5, 0.5, 0.5],
    image_std=[0.5, 0.5, 0.5],
    patch_size=16,
    temporal_patch_size=2,
    merge_size=2,
    cap_pixels_per_frame=None,  # None: not capped (the class warns that this default will change)
    max_video_tokens=768,
)


def group_times(times: list[float], temporal: int) -> list[float]:
    """Each temporal group's time in the prompt: the mean of its first and last frame's time, the last
    frame repeated to fill the last group (the processor's `_calculate_timestamps`, on the frames'
    recorded times)."""
    t = list(times) + [times[-1]] * (-len(times) % temporal)
    return [(t[i] + t[i + temporal - 1]) / 2 for i in range(0, len(t), temporal)]


class Qwen3VLAdapter(Qwen25VLAdapter):
    family = "qwen3_vl"
    MODEL_TYPE = "qwen3_vl"
    MODEL_CLASS = "Qwen3VLForConditionalGeneration"
    CHECKPOINTS = "Qwen3-VL's transformers-format checkpoints"
    VIDEO_DEFAULTS = VIDEO_DEFAULTS
    ATTENTION_BACKENDS = ("sdpa", "eager")  # transformers' Qwen3-VL text model refuses flex
    OPTIONS = {"deepstack": ("keep", "drop"), "frame_ranges": ("tokens", "markers")}
    PIXEL_KEYS = False  # its video class reads the budget from `size` only

    @staticmethod
    def installed_rope_rules(model) -> dict:
        """None to record: every group is one temporal step, where the text-after-video rules of
        transformers 5 (start + max(h, w)) and of Qwen's own code (largest position + 1) agree."""
        return {}

    # --- video -------------------------------------------------------------------------------
    def default_size(self) -> tuple[int, int]:
        """A square frame at the budget's upper end for the paper's 8 frames (before any per-frame
        cap): the grid the config's checks assume."""
        side = int(math.sqrt(self.processor["size"]["longest_edge"] / DEFAULT_FRAMES))
        return side, side

    def resized(self, height: int, width: int, n_frames: int) -> tuple[int, int]:
        """`n_frames` frames of height x width -> their size for the vision tower: transformers' own
        Qwen3-VL `smart_resize` (the budget over the whole clip), per frame capped as the video
        class caps it where the processor file sets `cap_pixels_per_frame`."""
        from transformers.models.qwen3_vl.video_processing_qwen3_vl import smart_resize

        if n_frames < self.temporal:
            raise ValueError(
                f"a clip of {n_frames} frame(s): {self.family} takes at least {self.temporal} (one "
                "temporal group), as its processor does; sample more frames (n_frames, frame_sampling)"
            )
        p = self.processor
        low, high = p["size"]["shortest_edge"], p["size"]["longest_edge"]
        if p["cap_pixels_per_frame"]:
            per_frame = max(min(p["max_video_tokens"] * self.factor**2, high // n_frames), int(low * 1.05))
            high = per_frame * n_frames
        return smart_resize(n_frames, height, width, self.temporal, self.factor, low, high)

    def video_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Frames [T', 3, h, w] -> [groups*gh*gw, 1 + levels, d]: the merger's video tokens, then each
        DeepStack level's, through the model's own `get_video_features` (group-major, row-major)."""
        p = self.processor
        patches, grid_thw = patchify(pixel_values, p["patch_size"], p["merge_size"], self.temporal)
        out = self.model.model.get_video_features(pixel_values_videos=patches, video_grid_thw=grid_thw)
        levels = [level[0] for level in out.deepstack_features]  # each [n_video, d]
        return torch.stack([out.pooler_output[0], *levels], dim=1)

    # --- text --------------------------------------------------------------------------------
    def sample_grid(self, q: Question, n_video: int | None = None) -> tuple[int, int, int]:
        """(groups, h, w) of a sample from its frames' size and times (recorded by extract_frames);
        the groups follow the times, which the prompt states (`n_video` is not needed)."""
        size, times = self.recorded_frames(q)
        if q.params.get("frame_times_numpy"):
            raise ValueError(
                f"{q.sample_id}: its frame times are VideoLLaMA3's loader's (frame_sampling linspace or "
                f"fps1), where the {self.family} prompt states index / fps as its processor does; use "
                "segments, hf_uniform, hf_centered, lvb_stride or fps2"
            )
        return (-(-len(times) // self.temporal), *self.grid_of(tuple(size), len(times)))

    def video_text(self, q: Question) -> tuple[str, list[tuple[int, int]]]:
        """The video as the processor expands it, and each group's character span in it."""
        text, spans = "", []
        for t in group_times(q.params["frame_times"], self.temporal):
            start = len(text)
            text += f"<{t:.1f} seconds>{VIDEO_TEXT}"
            spans.append((start, len(text)))
        return text, spans

    def encode(
        self, q: Question, answer: OpenAnswer | None = None, grid: tuple[int, int, int] | None = None
    ) -> tuple[list[int], TokenLayout, list[int]]:
        """The chat template's prompt with the video expanded per group, the layout (per-group spans;
        with `frame_ranges: markers` each group's block its whole text), the option-letter ids;
        with an `answer`, the open-ended prompt and the reference's ids."""
        grid = grid or self.sample_grid(q)  # first: its checks name what the sample lacks
        video, spans = self.video_text(q)
        blocks = spans if self.frame_ranges == "markers" else None
        return self.encode_video(q, answer, grid, video, True, blocks)

    def positions(self, ids: list[int], layout: TokenLayout, q: Question | None = None) -> torch.Tensor:
        """[3, 1, N] from the model's own rope index: the expanded ids, their token types (2 on the
        video) and the video's grid (which the rope index splits into one-step groups); the frames'
        times are in the text, so `q` adds nothing."""
        T, H, W = layout.grid
        merge = self.processor["merge_size"]
        expanded, types = rope_inputs(ids, layout, self.video_id)
        pos, _ = self.model.model.get_rope_index(
            expanded, types, None, torch.tensor([[T, H * merge, W * merge]])
        )
        return pos

    def split_features(self, video: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Cached features [n_video, 1 + levels, d] -> the video tokens [n_video, d] and, with
        `deepstack: keep`, the DeepStack levels as layer additions (each [n_video, d])."""
        return video[:, 0], tuple(video[:, 1:].unbind(1)) if self.deepstack == "keep" else ()

    def text_model_inputs(self, sample: PreparedSample) -> dict:
        """The DeepStack levels and their positions, as the model's own forward hands them to its text
        model (none with `deepstack: drop`)."""
        if not sample.layer_additions:
            return {}
        mask = torch.zeros(1, sample.inputs_embeds.shape[1], dtype=torch.bool, device=self.device)
        mask[0, torch.as_tensor(sample.layout.feature_indices())] = True
        return dict(visual_pos_masks=mask, deepstack_visual_embeds=list(sample.layer_additions))

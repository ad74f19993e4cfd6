"""LLaVA-OneVision in transformers' own format (llava-hf `llava-onevision-qwen2-0.5b-ov-hf`, `-7b-ov-hf`).

Video tokens, by the model's own `get_video_features`: each frame through the SigLIP tower (the
hub's has 26 of SigLIP's 27 layers, no head), the hidden states of `vision_feature_layer` (-1: the
last layer's output, before the tower's post-LayerNorm), all patches kept ("full"), the projector,
then bilinear pooling of the 27 x 27 patches to ceil(27/2)^2 = 14 x 14 = 196 tokens per frame, frames
back to back; after the last frame ONE `image_newline` vector. The prompt's one `<video>` becomes
T*196 + 1 tokens. In the layout the newline is the video's tail: the knockouts' "video" holds it (so
video -> question blocks it too: no path from the frames around the cut), no frame and no cell does
(cross-frame attention, "frame[t]" and the logit lens's positions are the frames' tokens).
Positions 0..N-1. Frames: the paper's rule (8); the hub processor's own rule is `frame_sampling:
uniform` (transformers' `sample_frames`).

Preprocessing: the checkpoint's `video_preprocessor_config.json` (the hub's: 384 x 384, bicubic,
mean and std 0.5, not the class's CLIP defaults) through PIL, as transformers' PIL image processor
of OneVision resizes its base image: straight to height x width, no crop, then rescale and normalise.
transformers' video class resizes tensors through torchvision (antialiased bicubic), which differs
from PIL's bicubic by rounding.

Prompt: the checkpoint's chat template (Qwen2's ChatML in the hub's files) around a system turn and
a user turn holding the video and the paper's question, then the pre-fill `Best option:(`.
"""

from __future__ import annotations

import math

from vlmflow.models.llava_next_video import LlavaNextVideoAdapter
from vlmflow.models.native import pil_resize_processor


class LlavaOnevisionAdapter(LlavaNextVideoAdapter):
    family = "llava_onevision"
    END_OF_TURN = "<|im_end|>"
    MODEL_TYPE = "llava_onevision"
    MODEL_CLASS = "LlavaOnevisionForConditionalGeneration"
    CHECKPOINTS = "llava-hf's LLaVA-OneVision checkpoints"
    TAIL = 1  # the image_newline after the last frame

    @staticmethod
    def pooled_side(config) -> int:
        """ceil(patches per side / 2): the model's bilinear pooling of each frame."""
        vision = config.vision_config
        return math.ceil(vision.image_size // vision.patch_size / 2)

    @staticmethod
    def video_processor_class():
        from transformers.models.llava_onevision.video_processing_llava_onevision import (
            LlavaOnevisionVideoProcessor,
        )

        return LlavaOnevisionVideoProcessor

    def pil_processor(self):
        """Straight resize to the processor's height x width (bicubic), rescale, normalise, with the
        checkpoint's values, through transformers' PIL backend."""
        p = self.video_processor
        switches = dict(do_resize=p.do_resize, do_rescale=p.do_rescale, do_normalize=p.do_normalize)
        size = (p.size.height, p.size.width)
        return pil_resize_processor(
            size,
            p.resample,
            p.rescale_factor,
            p.image_mean,
            p.image_std,
            do_convert_rgb=p.do_convert_rgb,
            **switches,
        )

    @staticmethod
    def check_frame_size(video_processor, image_size: int, path: str) -> None:
        """The processor resizes every frame to the tower's square input, with no crop."""
        size = video_processor.size
        if (size.height, size.width) != (image_size, image_size) or video_processor.do_center_crop:
            raise ValueError(
                f"checkpoint {path}: video_preprocessor_config.json gives frames of {size.height} x "
                f"{size.width} px (center crop: {bool(video_processor.do_center_crop)}), but the vision "
                f"tower takes {image_size} x {image_size} px uncropped (config.json "
                "vision_config.image_size); use the video_preprocessor_config.json saved with this checkpoint"
            )

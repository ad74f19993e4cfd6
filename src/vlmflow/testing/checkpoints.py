"""Random-weight checkpoints written in the real on-disk formats, for tests and benchmarks (the
released names come from each adapter's own rename table, read backwards).

- `write_pllava`: the authors' PLLaVA format of `byminji/LLaVA-NeXT-{7,13}B-Video-FT`: config
  `model_type "llava"`, architectures `PllavaForConditionalGeneration`, `pooling_shape`,
  `use_pooling`, `num_frames`, `vision_feature_layer -2`; weights `vision_tower.vision_model.*`,
  `multi_modal_projector.linear_{1,2}`, `language_model.model.*`, `language_model.lm_head`.
- `write_llava_next`: the llava-hf format of `llava-hf/llava-v1.6-vicuna-{7,13}b-hf` (the image
  bases): `model_type "llava_next"`, AnyRes grid pinpoints, an `image_newline` vector.

Both carry a Llama-style BPE tokenizer (Metaspace, byte fallback, BOS, `<image>` + `<pad>` added
after the vocabulary) and a CLIP image processor config, as the real repositories do.
- `write_llava_next_video`: the llava-hf format of `llava-hf/LLaVA-NeXT-Video-7B-hf`
  (`model_type "llava_next_video"`, `<video>` beside `<image>`, `video_preprocessor_config.json`,
  `chat_template.json`).
- `write_llava_onevision`: the llava-hf format of `llava-hf/llava-onevision-qwen2-7b-ov-hf`
  (`model_type "llava_onevision"`, SigLIP tower with the hub's `vision_model.` key level, a Qwen2
  tokenizer with `<image>` and `<video>`, processor files with mean and std 0.5, the ChatML
  `chat_template.json` transformers' conversion script writes).
- `write_internvl_hf`: transformers' format of `OpenGVLab/InternVL3-8B-hf` (`model_type "internvl"`,
  a Qwen2 tokenizer naming `<img>`, `</img>`, `<IMG_CONTEXT>` and `<video>`, the processor files, the
  ChatML chat template).
- `write_qwen2_5_vl`: transformers' format of `Qwen/Qwen2.5-VL-7B-Instruct` (`model_type
  "qwen2_5_vl"`, the vision tokens, the hub's `preprocessor_config.json` and chat template).
- `write_qwen3_vl`: transformers' format of `Qwen/Qwen3-VL-8B-Instruct` (`model_type "qwen3_vl"`,
  DeepStack mergers, the vision tokens, the hub's processor files and chat template).
- `write_internvl`: InternVL's released format of `OpenGVLab/Mini-InternVL-Chat-4B-V1-5` and
  `byminji/Mini-InternVL-4B-Video-FT` (`InternVLChatModel` config with `llm_config` / `vision_config`,
  fused `attn.qkv`, Phi-3 "su" rope, a SentencePiece `tokenizer.model`, bf16 weights).
- `write_videollama3`: the released format of `DAMO-NLP-SG/VideoLLaMA3-7B` (`videollama3_qwen2`
  config, `model.vision_encoder.*` / `model.mm_projector.*` weights, a Qwen2 tokenizer with `<image>`).

Sizes are arguments, so the same writers give a tiny fixture or a real-sized model.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from vlmflow.models.internvl import RENAMES as INTERNVL_RENAMES
from vlmflow.models.llava_video import RELEASED_NAMES
from vlmflow.models.videollama3 import RENAMES as VIDEOLLAMA3_RENAMES
from vlmflow.prompt import MVBENCH_SYSTEM

# transformers' name of one of the q, k, v weights that InternVL releases fused as `attn.qkv`
NATIVE_QKV = re.compile(
    r"^model\.vision_tower\.encoder\.layer\.(\d+)\.attention\.([qkv])_proj\.(weight|bias)$"
)

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


@dataclass
class Shape:
    """Sizes of a VideoLLM: its decoder (Llama, Phi-3 or Qwen2) and its vision tower."""

    layers: int = 4
    hidden: int = 64
    heads: int = 4
    kv_heads: int = 4
    intermediate: int = 128
    context: int = 4096
    vision_layers: int = 3
    vision_hidden: int = 32
    vision_heads: int = 2
    image_size: int = 56
    patch: int = 14
    pooling: tuple[int, int, int] = (8, 2, 2)

    def decoder_sizes(self, vocab: int) -> dict:
        """The decoder's sizes as transformers' Llama, Phi-3 and Qwen2 configs name them."""
        return dict(
            vocab_size=vocab,
            hidden_size=self.hidden,
            intermediate_size=self.intermediate,
            num_hidden_layers=self.layers,
            num_attention_heads=self.heads,
            num_key_value_heads=self.kv_heads,
        )


TINY = Shape()
# LLaVA-NeXT-7B-Video-FT: Vicuna-7B over CLIP ViT-L/14-336, pooled to 8 x 12 x 12
VICUNA_7B = Shape(
    layers=32,
    hidden=4096,
    heads=32,
    kv_heads=32,
    intermediate=11008,
    vision_layers=24,
    vision_hidden=1024,
    vision_heads=16,
    image_size=336,
    patch=14,
    pooling=(8, 12, 12),
)

_CORPUS = [
    MVBENCH_SYSTEM,
    "USER: ASSISTANT:Best option:( \nOnly give the best option. Question: Options:",
    "What is the person doing? In which order do things happen? Which direction does the object move?",
    "How many objects are moving? How does the scene change? The man picks up the cup then drinks.",
    "left right up down clockwise counterclockwise one two three four five from grass to sea forest city",
]


def llama_tokenizer(vocab_size: int = 400, corpus: list[str] | None = None):
    """A Llama tokenizer trained on a small corpus (by default the fixtures' own): Metaspace pieces,
    byte fallback, BOS added; `<image>` and `<pad>` added after the vocabulary (ids vocab_size,
    vocab_size+1 as in PLLaVA)."""
    from tokenizers import Regex, pre_tokenizers, trainers
    from transformers import LlamaTokenizer

    backend = LlamaTokenizer().backend_tokenizer
    # train on pieces that never cross whitespace, punctuation or newlines, like sentencepiece's
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r"[\n().,:?!']"), "isolated"),
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True),
        ]
    )
    bytes_ = [f"<0x{b:02X}>" for b in range(256)]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<unk>", "<s>", "</s>", *bytes_],
        initial_alphabet=list("ABCDEFGH()"),
        show_progress=False,
    )
    backend.train_from_iterator((corpus or _CORPUS) * 4, trainer)
    model = json.loads(backend.to_str())["model"]
    tok = LlamaTokenizer(vocab=model["vocab"], merges=[tuple(m) for m in model["merges"]], add_bos_token=True)
    tok.add_special_tokens({"additional_special_tokens": ["<image>"], "pad_token": "<pad>"})
    return tok


def _configs(shape: Shape, vocab: int, image_token: int, pad_token: int):
    from transformers import CLIPVisionConfig, LlamaConfig

    text = LlamaConfig(
        **shape.decoder_sizes(vocab),
        max_position_embeddings=shape.context,
        rms_norm_eps=1e-5,
        pad_token_id=pad_token,
    )
    vision = CLIPVisionConfig(
        hidden_size=shape.vision_hidden,
        intermediate_size=4 * shape.vision_hidden,
        num_hidden_layers=shape.vision_layers,
        num_attention_heads=shape.vision_heads,
        image_size=shape.image_size,
        patch_size=shape.patch,
        projection_dim=shape.vision_hidden,
        hidden_act="quick_gelu",
    )
    return text, vision


def _save_weights(model, out: Path, dtype: torch.dtype) -> None:
    from safetensors.torch import save_file

    state = {
        RELEASED_NAMES.released(k): v.to(dtype).cpu().contiguous() for k, v in model.state_dict().items()
    }
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})


def _image_processor(shape: Shape, cls_name: str = "CLIPImageProcessor", **extra):
    import transformers

    cls = getattr(transformers, cls_name)
    return cls(
        size={"shortest_edge": shape.image_size},
        crop_size={"height": shape.image_size, "width": shape.image_size},
        image_mean=CLIP_MEAN,
        image_std=CLIP_STD,
        do_center_crop=True,
        **extra,
    )


def _build(model_cls, config, seed: int, lm_head_scale: float, device: str = "cpu"):
    torch.manual_seed(seed)
    with torch.device(device):
        model = model_cls(config)
    with torch.no_grad():  # sharpen the random model so its answer probabilities are far from uniform
        model.lm_head.weight.mul_(lm_head_scale)
    return model.eval()


def write_pllava(
    out: str | Path,
    shape: Shape = TINY,
    seed: int = 0,
    num_frames: int = 8,
    dtype: torch.dtype = torch.float32,
    lm_head_scale: float = 30.0,
    device: str = "cpu",
) -> Path:
    """A random LLaVA-NeXT-Video-FT checkpoint in the authors' PLLaVA format."""
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tok = llama_tokenizer()
    image_token, pad = tok.convert_tokens_to_ids(["<image>", "<pad>"])
    text, vision = _configs(shape, len(tok), image_token, pad)
    model = _build(
        LlavaForConditionalGeneration,
        LlavaConfig(
            text_config=text, vision_config=vision, image_token_index=image_token, vision_feature_layer=-2
        ),
        seed,
        lm_head_scale,
        device,
    )
    _save_weights(model, out, dtype)
    del model  # a 7B shape holds tens of GB
    config = {  # the fields of the PLLaVA config.json, older transformers' names included
        "architectures": ["PllavaForConditionalGeneration"],
        "model_type": "llava",
        "ignore_index": -100,
        "image_token_index": image_token,
        "pad_token_id": pad,
        "projector_hidden_act": "gelu",
        "vision_feature_layer": -2,
        "vision_feature_select_strategy": "default",
        "use_pooling": True,
        "pooling_method": "avg",
        "pooling_shape": list(shape.pooling),
        "num_frames": num_frames,
        "frame_shape": [shape.image_size // shape.patch] * 2,
        "vocab_size": len(tok),
        "torch_dtype": str(dtype).removeprefix("torch."),
        "transformers_version": "4.40.0",
        "text_config": {
            **_sparse(text),
            "architectures": ["LlamaForCausalLM"],
            "_name_or_path": "lmsys/vicuna-7b-v1.5",
        },
        "vision_config": _sparse(vision),
    }
    (out / "config.json").write_text(json.dumps(config, indent=2))
    tok.save_pretrained(out)
    _image_processor(shape).save_pretrained(out)
    return out


def write_llava_next(
    out: str | Path,
    shape: Shape = TINY,
    seed: int = 1,
    dtype: torch.dtype = torch.float32,
    lm_head_scale: float = 30.0,
) -> Path:
    """A random LLaVA-NeXT image model in the llava-hf format (AnyRes config, image_newline)."""
    from transformers import LlavaNextConfig, LlavaNextForConditionalGeneration

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tok = llama_tokenizer()
    image_token, pad = tok.convert_tokens_to_ids(["<image>", "<pad>"])
    text, vision = _configs(shape, len(tok), image_token, pad)
    s = shape.image_size
    pinpoints = [[s, 2 * s], [2 * s, s], [2 * s, 2 * s], [3 * s, s], [s, 3 * s]]
    config = LlavaNextConfig(
        text_config=text,
        vision_config=vision,
        image_token_index=image_token,
        image_grid_pinpoints=pinpoints,
        vision_feature_layer=-2,
        tie_word_embeddings=False,
    )
    model = _build(LlavaNextForConditionalGeneration, config, seed, lm_head_scale)
    model.config.dtype = dtype
    model.config.save_pretrained(out)
    _save_weights(model, out, dtype)
    tok.save_pretrained(out)
    _image_processor(shape, "LlavaNextImageProcessor", image_grid_pinpoints=pinpoints).save_pretrained(out)
    return out


# the llava-hf Vicuna chat template with its video clause, in the form the LLaVA-NeXT-Video-hf
# repositories' chat_template.json carries (system text as is, "USER: ", the video as "<video>\n",
# each text + " ", "ASSISTANT:")
LLAVA_HF_VICUNA_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}"
    "{{ message['role'].upper() + ': '}}{% endif %}"
    "{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', "
    "'image') %}{{ '<image>\n' }}{% endfor %}"
    "{# Render all video then #}{% for content in message['content'] | selectattr('type', 'equalto', "
    "'video') %}{{ '<video>\n' }}{% endfor %}"
    "{# Render all text next #}{% if message['role'] != 'assistant' %}{% for content in "
    "message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}{% endfor %}"
    "{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)


def write_llava_next_video(
    out: str | Path,
    shape: Shape = TINY,
    seed: int = 2,
    dtype: torch.dtype = torch.float32,
    lm_head_scale: float = 30.0,
    chat_template: str = LLAVA_HF_VICUNA_TEMPLATE,
    image_mean: list[float] = CLIP_MEAN,
    device: str = "cpu",
) -> Path:
    """A random LLaVA-NeXT-Video checkpoint in the llava-hf format of `llava-hf/LLaVA-NeXT-Video-7B-hf`:
    `model_type "llava_next_video"` (average pooling, stride 2), hub key names, a tokenizer with
    `<video>` and `<image>`, the video processor's `video_preprocessor_config.json`, the image
    processor's `preprocessor_config.json` and the processor's `chat_template.json`."""
    from transformers import (
        LlavaNextImageProcessor,
        LlavaNextVideoConfig,
        LlavaNextVideoForConditionalGeneration,
    )
    from transformers.models.llava_next_video.video_processing_llava_next_video import (
        LlavaNextVideoVideoProcessor,
    )

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tok = llama_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": ["<image>", "<video>"]})
    image_token, video_token, pad = tok.convert_tokens_to_ids(["<image>", "<video>", "<pad>"])
    text, vision = _configs(shape, len(tok), image_token, pad)
    s = shape.image_size
    config = LlavaNextVideoConfig(
        text_config=text,
        vision_config=vision,
        image_token_index=image_token,
        video_token_index=video_token,
        image_grid_pinpoints=[[s, 2 * s], [2 * s, s], [2 * s, 2 * s]],
        vision_feature_layer=-2,
        spatial_pool_mode="average",
        spatial_pool_stride=2,
        tie_word_embeddings=False,
    )
    model = _build(LlavaNextVideoForConditionalGeneration, config, seed, lm_head_scale, device)
    model.config.dtype = dtype
    model.config.save_pretrained(out)
    _save_weights(model, out, dtype)
    del model  # a 7B shape holds tens of GB
    tok.save_pretrained(out)
    sizes = dict(size={"shortest_edge": s}, crop_size={"height": s, "width": s}, image_std=CLIP_STD)
    LlavaNextVideoVideoProcessor(**sizes, image_mean=image_mean).save_pretrained(out)
    LlavaNextImageProcessor(**sizes, image_mean=CLIP_MEAN).save_pretrained(out)
    (out / "chat_template.json").write_text(json.dumps({"chat_template": chat_template}, indent=2))
    return out


# the chat template transformers' conversion script writes into the LLaVA-OneVision-hf repositories'
# chat_template.json: ChatML turns, each image as "<image>\n" and video as "<video>\n" before the text
ONEVISION_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n'}}"
    "{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', "
    "'image') %}{{ '<image>\n' }}{% endfor %}"
    "{# Render all video then #}{% for content in message['content'] | selectattr('type', 'equalto', "
    "'video') %}{{ '<video>\n' }}{% endfor %}"
    "{# Render all text next #}{% if message['role'] != 'assistant' %}{% for content in "
    "message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] }}{% endfor %}"
    "{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] }}{% endgeneration %}{% endfor %}{% endif %}"
    "{{'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% endif %}"
)
# 70 px over 14 px patches: 5 x 5 patches, pooled to ceil(5/2) = 3 x 3 tokens per frame (an odd side,
# as the hub's 27 x 27 -> 14 x 14)
ONEVISION_TINY = Shape(image_size=70, vision_layers=2, kv_heads=2)
# llava-onevision-qwen2-7b-ov-hf: Qwen2-7B (28 x 3584, GQA 28 / 4) over SigLIP-so400m (26 layers, 384 px)
ONEVISION_7B = Shape(
    layers=28,
    hidden=3584,
    heads=28,
    kv_heads=4,
    intermediate=18944,
    context=32768,
    vision_layers=26,
    vision_hidden=1152,
    vision_heads=16,
    image_size=384,
    patch=14,
    pooling=(8, 14, 14),
)
HALF = [0.5, 0.5, 0.5]  # the hub processors' mean and std (SigLIP's)


def write_llava_onevision(
    out: str | Path,
    shape: Shape = ONEVISION_TINY,
    seed: int = 3,
    dtype: torch.dtype = torch.float32,
    lm_head_scale: float = 30.0,
    chat_template: str = ONEVISION_TEMPLATE,
    image_mean: list[float] = HALF,
    keys: str = "hub",
    device: str = "cpu",
) -> Path:
    """A random LLaVA-OneVision checkpoint in the llava-hf format: `model_type "llava_onevision"`,
    a SigLIP tower without head (`vision_feature_layer -1`, "full"), a Qwen2 decoder, weights under
    the hub's names (`keys="hub"`: `vision_tower.vision_model.*`, `language_model.model.*`, ...) or as
    transformers' `save_pretrained` writes them (`keys="saved"`: no `vision_model.` level), a Qwen2
    tokenizer with `<image>` and `<video>`, `preprocessor_config.json`,
    `video_preprocessor_config.json` (mean and std 0.5 unless `image_mean`) and `chat_template.json`."""
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessor,
        Qwen2Config,
        SiglipVisionConfig,
    )
    from transformers.models.llava_onevision.video_processing_llava_onevision import (
        LlavaOnevisionVideoProcessor,
    )

    if keys not in ("hub", "saved"):
        raise ValueError(f"keys must be 'hub' or 'saved', got {keys!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tok = qwen2_tokenizer()
    tok.add_tokens(["<video>"], special_tokens=True)
    image_token, video_token = tok.convert_tokens_to_ids(["<image>", "<video>"])
    vision = SiglipVisionConfig(**_vision_fields(shape), image_size=shape.image_size, vision_use_head=False)
    config = LlavaOnevisionConfig(
        text_config=Qwen2Config(**_qwen2_fields(shape, tok)),
        vision_config=vision,
        image_token_index=image_token,
        video_token_index=video_token,
        vision_feature_layer=-1,
        vision_feature_select_strategy="full",
        tie_word_embeddings=False,
    )
    model = _build(LlavaOnevisionForConditionalGeneration, config, seed, lm_head_scale, device)
    model.config.dtype = dtype
    if keys == "hub":
        model.config.save_pretrained(out)
        _save_weights(model, out, dtype)
    else:
        model.to(dtype).save_pretrained(out)
    del model
    tok.save_pretrained(out)
    s = shape.image_size
    sizes = dict(size={"height": s, "width": s}, image_std=HALF)
    LlavaOnevisionVideoProcessor(**sizes, image_mean=image_mean).save_pretrained(out)
    LlavaOnevisionImageProcessor(
        **sizes, image_mean=HALF, image_grid_pinpoints=[[s, s], [s, 2 * s]]
    ).save_pretrained(out)
    (out / "chat_template.json").write_text(json.dumps({"chat_template": chat_template}, indent=2))
    return out


# the chat template transformers' conversion script writes for the InternVL `-hf` repositories
INTERNVL_HF_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n'}}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] %}{% if content['type'] == 'image' %}{{ '<image>\n' }}"
    "{% elif content['type'] == 'video' %}{{ '<video>\n' }}"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{{'<|im_end|>\n'}}{% endfor %}{% if add_generation_prompt %}{{'<|im_start|>assistant\n' }}{% endif %}"
)
INTERNVL_NAMED_TOKENS = dict(
    start_image_token="<img>",
    end_image_token="</img>",
    context_image_token="<IMG_CONTEXT>",
    video_token="<video>",
)
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
# 56 px over 14 px patches: 4 x 4 patches, pixel shuffle 0.5 -> 2 x 2 tokens per frame
INTERNVL_HF_TINY = Shape(vision_layers=2, kv_heads=2)
# InternVL3-8B-hf: Qwen2.5-7B (28 x 3584, GQA 28 / 4) over InternViT-300M-448px: 256 tokens per frame
INTERNVL3_8B = Shape(
    layers=28,
    hidden=3584,
    heads=28,
    kv_heads=4,
    intermediate=18944,
    context=32768,
    vision_layers=24,
    vision_hidden=1024,
    vision_heads=16,
    image_size=448,
    patch=14,
    pooling=(8, 16, 16),
)


def write_internvl_hf(
    out: str | Path,
    shape: Shape = INTERNVL_HF_TINY,
    seed: int = 5,
    dtype: torch.dtype = torch.float32,
    lm_head_scale: float = 30.0,
    chat_template: str = INTERNVL_HF_TEMPLATE,
    image_mean: list[float] = IMAGENET_MEAN,
    video_processor_file: bool = True,
    decoder: str = "qwen2",
    device: str = "cpu",
) -> Path:
    """A random InternVL checkpoint in transformers' format of `OpenGVLab/InternVL3-8B-hf`:
    `model_type "internvl"` (InternViT, pixel shuffle 0.5, a Qwen2 decoder, or with
    `decoder="qwen3"` InternVL3.5's Qwen3) written by
    `save_pretrained`, a Qwen2 tokenizer naming `<img>`, `</img>`, `<IMG_CONTEXT>` and `<video>` as
    its processor reads them, the image processor's `preprocessor_config.json`, the video
    processor's `video_preprocessor_config.json` (unless `video_processor_file` is False; ImageNet
    mean and std unless `image_mean`) and the chat template in `chat_template.json`."""
    from transformers import (
        GotOcr2ImageProcessor,
        InternVLConfig,
        InternVLForConditionalGeneration,
        InternVLVisionConfig,
        Qwen2Config,
        Qwen3Config,
    )

    text_cls = {"qwen2": Qwen2Config, "qwen3": Qwen3Config}[decoder]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tok = qwen2_tokenizer(**INTERNVL_NAMED_TOKENS)
    s = shape.image_size
    vision = InternVLVisionConfig(
        hidden_size=shape.vision_hidden,
        intermediate_size=4 * shape.vision_hidden,
        num_hidden_layers=shape.vision_layers,
        num_attention_heads=shape.vision_heads,
        image_size=[s, s],
        patch_size=[shape.patch, shape.patch],
        use_absolute_position_embeddings=True,
    )
    config = InternVLConfig(
        vision_config=vision,
        text_config=text_cls(
            **_qwen2_fields(shape, tok), rope_parameters={"rope_type": "default", "rope_theta": 1e6}
        ),
        image_token_id=tok.convert_tokens_to_ids("<IMG_CONTEXT>"),
        downsample_ratio=0.5,
        tie_word_embeddings=False,
    )
    model = _build(InternVLForConditionalGeneration, config, seed, lm_head_scale, device)
    model.to(dtype).save_pretrained(out)
    del model
    tok.save_pretrained(out)
    size = {"height": s, "width": s}
    GotOcr2ImageProcessor(size=size, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD).save_pretrained(out)
    if video_processor_file:  # the file InternVLVideoProcessor writes (its class needs torchvision here)
        video = dict(
            video_processor_type="InternVLVideoProcessor",
            processor_class="InternVLProcessor",
            size=size,
            resample=3,
            do_resize=True,
            do_rescale=True,
            rescale_factor=1 / 255,
            do_normalize=True,
            image_mean=image_mean,
            image_std=IMAGENET_STD,
            do_convert_rgb=True,
            initial_shift=True,
        )
        (out / "video_preprocessor_config.json").write_text(json.dumps(video, indent=2))
    (out / "chat_template.json").write_text(json.dumps({"chat_template": chat_template}, indent=2))
    return out


# the chat template of the Qwen2-VL / Qwen2.5-VL hub repositories (a default system turn, each video
# as <|vision_start|><|video_pad|><|vision_end|>, optional "Video k: " ids)
QWEN2_VL_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture "
    "{{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video "
    "{{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
QWEN_VISION_TOKENS = [
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]


def _qwen_vl_tokenizer():
    """A Qwen2 tokenizer with the Qwen VL vision tokens, and their ids as the configs name them."""
    tok = qwen2_tokenizer()
    tok.add_tokens(QWEN_VISION_TOKENS, special_tokens=True)
    ids = dict(zip(QWEN_VISION_TOKENS, tok.convert_tokens_to_ids(QWEN_VISION_TOKENS)))
    names = ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id")
    pads = ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")
    return tok, {name: ids[t] for name, t in zip(names, pads)}


QWEN2_5_VL_TINY = Shape(vision_layers=2, kv_heads=2)
# Qwen2.5-VL-7B-Instruct: Qwen2.5-7B (28 x 3584, GQA 28 / 4) over its 32-layer ViT (1280 wide)
QWEN2_5_VL_7B = Shape(
    layers=28,
    hidden=3584,
    heads=28,
    kv_heads=4,
    intermediate=18944,
    context=128000,
    vision_layers=32,
    vision_hidden=1280,
    vision_heads=16,
    patch=14,
)


def write_qwen2_5_vl(
    out: str | Path,
    shape: Shape = QWEN2_5_VL_TINY,
    seed: int = 6,
    dtype: torch.dtype = torch.float32,
    lm_head_scale: float = 30.0,
    min_pixels: int = 56 * 56,
    max_pixels: int = 112 * 112,
    video_budget: tuple[int, int] | None = None,
    device: str = "cpu",
) -> Path:
    """A random Qwen2.5-VL checkpoint in transformers' format of `Qwen/Qwen2.5-VL-7B-Instruct`:
    `model_type "qwen2_5_vl"` (a windowed ViT with temporal patches of 2 frames, 2 x 2 merge, M-RoPE
    sections) written by `save_pretrained`, a Qwen2 tokenizer with the vision tokens, the hub's
    `preprocessor_config.json` (`min_pixels` / `max_pixels`), with `video_budget` a
    `video_preprocessor_config.json` of its own pixel budget (shortest, longest edge), and the chat
    template in `chat_template.json`."""
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLTextConfig,
        Qwen2_5_VLVisionConfig,
    )

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tok, vision_ids = _qwen_vl_tokenizer()
    head_dim = shape.hidden // shape.heads
    text = Qwen2_5_VLTextConfig(
        **_qwen2_fields(shape, tok),
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 1e6,
            "mrope_section": _mrope_section(head_dim),
        },
    )
    vision = Qwen2_5_VLVisionConfig(
        depth=shape.vision_layers,
        hidden_size=shape.vision_hidden,
        intermediate_size=2 * shape.vision_hidden,
        num_heads=shape.vision_heads,
        patch_size=shape.patch,
        spatial_merge_size=2,
        temporal_patch_size=2,
        window_size=112,
        fullatt_block_indexes=[shape.vision_layers - 1],
        out_hidden_size=shape.hidden,
        tokens_per_second=2,
    )
    config = Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        **vision_ids,
        tie_word_embeddings=False,
    )
    model = _build(Qwen2_5_VLForConditionalGeneration, config, seed, lm_head_scale, device)
    model.to(dtype).save_pretrained(out)
    del model
    tok.save_pretrained(out)
    processor = dict(
        image_processor_type="Qwen2VLImageProcessor",
        processor_class="Qwen2_5_VLProcessor",
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        patch_size=shape.patch,
        temporal_patch_size=2,
        merge_size=2,
        image_mean=CLIP_MEAN,
        image_std=CLIP_STD,
        resample=3,
        do_resize=True,
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        do_convert_rgb=True,
    )
    (out / "preprocessor_config.json").write_text(json.dumps(processor, indent=2))
    if video_budget is not None:
        video = dict(processor, video_processor_type="Qwen2VLVideoProcessor")
        for k in ("image_processor_type", "min_pixels", "max_pixels"):
            video.pop(k)
        video["size"] = {"shortest_edge": video_budget[0], "longest_edge": video_budget[1]}
        (out / "video_preprocessor_config.json").write_text(json.dumps(video, indent=2))
    (out / "chat_template.json").write_text(json.dumps({"chat_template": QWEN2_VL_TEMPLATE}, indent=2))
    return out


QWEN3_VL_TINY = Shape(vision_layers=2, kv_heads=2, patch=16)
# Qwen3-VL-8B-Instruct: Qwen3-8B (36 x 4096, GQA 32 / 8, head_dim 128) over its 27-layer ViT (1152
# wide), DeepStack from vision layers 8, 16 and 24
QWEN3_VL_8B = Shape(
    layers=36,
    hidden=4096,
    heads=32,
    kv_heads=8,
    intermediate=12288,
    context=262144,
    vision_layers=27,
    vision_hidden=1152,
    vision_heads=16,
    patch=16,
)
# the chat template of the Qwen3-VL Instruct hub repositories (no default system turn; tools)
QWEN3_VL_TEMPLATE = (Path(__file__).parent / "qwen3_vl_chat_template.jinja").read_text()


def write_qwen3_vl(
    out: str | Path,
    shape: Shape = QWEN3_VL_TINY,
    seed: int = 7,
    dtype: torch.dtype = torch.float32,
    lm_head_scale: float = 30.0,
    budget: tuple[int, int] = (2 * 32 * 32, 16 * 64 * 64),
    deepstack_layers: tuple[int, ...] | None = None,
    cap_pixels_per_frame: bool | None = None,
    device: str = "cpu",
) -> Path:
    """A random Qwen3-VL checkpoint in transformers' format of `Qwen/Qwen3-VL-8B-Instruct`:
    `model_type "qwen3_vl"` (a ViT with learned position embeddings, temporal patches of 2 frames,
    2 x 2 merge, DeepStack mergers at `deepstack_layers` of the vision tower, by default the hub's
    8, 16, 24 or a tiny tower's first 3; interleaved M-RoPE sections) written by `save_pretrained`,
    a Qwen2 tokenizer with the vision tokens, the hub's `video_preprocessor_config.json` (pixel
    `budget` for the whole clip: shortest, longest edge; `cap_pixels_per_frame` where given) and
    `preprocessor_config.json`, and the chat template in `chat_template.json`."""
    from transformers import (
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
        Qwen3VLTextConfig,
        Qwen3VLVisionConfig,
    )

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tok, vision_ids = _qwen_vl_tokenizer()
    head_dim = shape.hidden // shape.heads
    fields = _qwen2_fields(shape, tok)
    text = Qwen3VLTextConfig(
        **{
            k: v
            for k, v in fields.items()
            if k not in ("bos_token_id", "eos_token_id", "tie_word_embeddings")
        },
        head_dim=head_dim,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 5e6,
            "mrope_section": _interleaved_mrope_section(head_dim),
            "mrope_interleaved": True,
        },
    )
    if deepstack_layers is None:  # the hub's 8, 16, 24 of 27 layers; a tiny tower's first ones
        deepstack_layers = (8, 16, 24) if shape.vision_layers > 24 else range(min(3, shape.vision_layers))
    deepstack = list(deepstack_layers)
    vision = Qwen3VLVisionConfig(
        depth=shape.vision_layers,
        hidden_size=shape.vision_hidden,
        intermediate_size=2 * shape.vision_hidden,
        num_heads=shape.vision_heads,
        patch_size=shape.patch,
        spatial_merge_size=2,
        temporal_patch_size=2,
        out_hidden_size=shape.hidden,
        num_position_embeddings=64,  # an 8 x 8 learned grid, resampled to each clip's
        deepstack_visual_indexes=deepstack,
    )
    config = Qwen3VLConfig(
        text_config=text,
        vision_config=vision,
        **vision_ids,
        tie_word_embeddings=False,
    )
    model = _build(Qwen3VLForConditionalGeneration, config, seed, lm_head_scale, device)
    model.to(dtype).save_pretrained(out)
    del model
    tok.save_pretrained(out)
    common = dict(
        patch_size=shape.patch,
        temporal_patch_size=2,
        merge_size=2,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
        processor_class="Qwen3VLProcessor",
    )
    image = dict(common, image_processor_type="Qwen2VLImageProcessorFast")
    image["size"] = {"shortest_edge": 65536, "longest_edge": 16777216}
    (out / "preprocessor_config.json").write_text(json.dumps(image, indent=2))
    video = dict(common, video_processor_type="Qwen3VLVideoProcessor", fps=2, min_frames=4, max_frames=768)
    video["size"] = {"shortest_edge": budget[0], "longest_edge": budget[1]}
    if cap_pixels_per_frame is not None:
        video["cap_pixels_per_frame"] = cap_pixels_per_frame
    (out / "video_preprocessor_config.json").write_text(json.dumps(video, indent=2))
    (out / "chat_template.json").write_text(json.dumps({"chat_template": QWEN3_VL_TEMPLATE}, indent=2))
    return out


def _interleaved_mrope_section(head_dim: int) -> list[int]:
    """Interleaved M-RoPE's (temporal, height, width) counts of head_dim / 2 rotary pairs, in
    Qwen3-VL's proportions (24, 20, 20 of 64); height and width take every third pair from 1 and 2."""
    half = head_dim // 2
    hw = half * 20 // 64
    return [half - 2 * hw, hw, hw]


def _mrope_section(head_dim: int) -> list[int]:
    """M-RoPE's (temporal, height, width) split of head_dim / 2 rotary pairs, in Qwen2.5-VL's
    proportions (16, 24, 24 of 64)."""
    half = head_dim // 2
    t = half // 4
    h = (half - t) // 2
    return [t, h, half - t - h]


def _sparse(cfg) -> dict:
    """A sub-config as the hub stores it: only what differs from the class defaults."""
    return {**cfg.to_diff_dict(), "model_type": cfg.model_type}


# --- InternVL's released format (Mini-InternVL-Chat-4B-V1-5, Mini-InternVL-4B-Video-FT) -----------
INTERNVL_TINY = Shape(vision_layers=2)  # 56 px: 4 x 4 patches -> pixel shuffle 0.5 -> 2 x 2 tokens per frame
# Mini-InternVL-4B: Phi-3-mini (32 x 3072) over InternViT-300M-448px -> 16 x 16 tokens per frame
MINI_INTERNVL_4B = Shape(
    layers=32,
    hidden=3072,
    heads=32,
    kv_heads=32,
    intermediate=8192,
    vision_layers=24,
    vision_hidden=1024,
    vision_heads=16,
    image_size=448,
)
# Phi-3's chat tokens strip the whitespace after them; InternVL's image tokens follow
PHI3_TOKENS = ["<|endoftext|>", "<|assistant|>", "<|system|>", "<|end|>", "<|user|>"]
INTERNVL_TOKENS = [
    "<img>",
    "</img>",
    "<IMG_CONTEXT>",
    "<quad>",
    "</quad>",
    "<ref>",
    "</ref>",
    "<box>",
    "</box>",
]


def phi3_tokenizer(out: str | Path | None = None, vocab_size: int = 500):
    """A SentencePiece tokenizer as Phi-3 ships it (`tokenizer.model`: BPE pieces, byte fallback,
    BOS added) with Phi-3's chat tokens (`rstrip`: they swallow the whitespace after them) and
    InternVL's image tokens added after the vocabulary in `tokenizer_config.json`; written to `out`
    (a temporary directory when None) and loaded back. Needs `sentencepiece` and `protobuf`."""
    import io
    import tempfile

    import sentencepiece as spm
    from transformers import AutoTokenizer, PreTrainedConfig

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_CORPUS * 4),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="bpe",
        byte_fallback=True,
        character_coverage=1.0,
        required_chars="ABCDEFGH()",  # every option letter is a piece of its own, as in Llama's vocabulary
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        split_digits=True,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        num_threads=1,
        minloglevel=2,
    )
    added = {
        str(vocab_size + i): {
            "content": t,
            "lstrip": False,
            "rstrip": t in PHI3_TOKENS and t != "<|endoftext|>",
            "normalized": False,
            "single_word": False,
            "special": True,
        }
        for i, t in enumerate(PHI3_TOKENS + INTERNVL_TOKENS)
    }
    config = {
        "tokenizer_class": "LlamaTokenizer",
        "add_bos_token": True,
        "add_eos_token": False,
        "legacy": False,
        "bos_token": "<s>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<unk>",
        "pad_token": "<|endoftext|>",
        "added_tokens_decoder": added,
        "model_max_length": 131072,
        "clean_up_tokenization_spaces": False,
    }
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(out or tmp)
        where.mkdir(parents=True, exist_ok=True)
        (where / "tokenizer.model").write_bytes(model.getvalue())
        (where / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
        return AutoTokenizer.from_pretrained(str(where), config=PreTrainedConfig())


def build_internvl(shape: Shape, tok, seed: int, lm_head_scale: float = 30.0, device: str = "cpu"):
    """The random model in transformers' classes (the writer's source, and a test's expectation)."""
    from transformers import (
        InternVLConfig,
        InternVLForConditionalGeneration,
        InternVLVisionConfig,
        Phi3Config,
    )

    text = Phi3Config(**_phi3_fields(shape, tok), rope_parameters=_phi3_longrope(shape))
    vision = InternVLVisionConfig(
        hidden_size=shape.vision_hidden,
        num_hidden_layers=shape.vision_layers,
        num_attention_heads=shape.vision_heads,
        intermediate_size=4 * shape.vision_hidden,
        image_size=shape.image_size,
        patch_size=shape.patch,
        attention_bias=True,
        use_mean_pooling=True,
    )
    config = InternVLConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=tok.convert_tokens_to_ids("<IMG_CONTEXT>"),
        tie_word_embeddings=False,
    )
    model = _build(InternVLForConditionalGeneration, config, seed, lm_head_scale, device)
    with torch.no_grad():  # non-trivial layer scales and position embeddings (zeros/ones at init)
        g = torch.Generator().manual_seed(seed)
        for name, p in model.named_parameters():
            if "lambda_" in name or "position_embeddings" in name or "cls_token" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return model


def _phi3_fields(shape: Shape, tok) -> dict:
    return dict(
        **shape.decoder_sizes(len(tok)),
        max_position_embeddings=131072,
        original_max_position_embeddings=4096,
        rms_norm_eps=1e-5,
        sliding_window=262144,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.convert_tokens_to_ids("<|endoftext|>"),
        pad_token_id=tok.convert_tokens_to_ids("<|endoftext|>"),
        tie_word_embeddings=False,
    )


def _phi3_factors(shape: Shape) -> tuple[list[float], list[float]]:
    half = shape.hidden // shape.heads // 2
    short = [1.0 + 0.05 * i for i in range(half)]  # not all 1: ignoring them would change outputs
    return short, [2.0 + 0.5 * i for i in range(half)]


def _phi3_longrope(shape: Shape) -> dict:
    import math

    short, long = _phi3_factors(shape)
    return {
        "rope_type": "longrope",
        "rope_theta": 10000.0,
        "short_factor": short,
        "long_factor": long,
        "original_max_position_embeddings": 4096,
        "factor": 131072 / 4096,
        "attention_factor": math.sqrt(1 + math.log(131072 / 4096) / math.log(4096)),
    }


def write_internvl(
    out: str | Path,
    shape: Shape = INTERNVL_TINY,
    seed: int = 0,
    dtype: torch.dtype = torch.bfloat16,
    lm_head_scale: float = 30.0,
    device: str = "cpu",
) -> Path:
    """A random Mini-InternVL checkpoint in InternVL's released format: `InternVLChatModel` config
    with `llm_config` (Phi-3, rope_scaling "su") and `vision_config` (InternViT), fused `attn.qkv`,
    bf16 weights as released, and no code (the `auto_map` names files that are not shipped)."""
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tok = phi3_tokenizer(out)  # tokenizer.model + tokenizer_config.json, as released
    model = build_internvl(shape, tok, seed, lm_head_scale, device)
    state, fused = {}, {}
    for k, v in model.state_dict().items():
        m = NATIVE_QKV.match(k)
        if m:  # transformers' q, k, v -> one released attn.qkv, rows [q | k | v]
            layer, part, kind = m.groups()
            fused.setdefault(f"vision_model.encoder.layers.{layer}.attn.qkv.{kind}", {})[part] = v
        else:
            state[INTERNVL_RENAMES.released(k)] = v
    for name, parts in fused.items():
        state[name] = torch.cat([parts["q"], parts["k"], parts["v"]])
    save_file(
        {k: v.to(dtype).cpu().contiguous() for k, v in state.items()},
        str(out / "model.safetensors"),
        metadata={"format": "pt"},
    )
    del model
    short, long = _phi3_factors(shape)
    llm = {
        **_phi3_fields(shape, tok),
        "architectures": ["Phi3ForCausalLM"],
        "model_type": "phi3",
        "hidden_act": "silu",
        "rope_theta": 10000.0,
        "rope_scaling": {"type": "su", "short_factor": short, "long_factor": long},
        "torch_dtype": "bfloat16",
        "attn_implementation": "flash_attention_2",  # InternVL's config writes this into llm_config
    }
    vision = {
        "architectures": ["InternVisionModel"],
        "model_type": "intern_vit_6b",
        "hidden_size": shape.vision_hidden,
        "num_hidden_layers": shape.vision_layers,
        "num_attention_heads": shape.vision_heads,
        "intermediate_size": 4 * shape.vision_hidden,
        "image_size": shape.image_size,
        "patch_size": shape.patch,
        "num_channels": 3,
        "hidden_act": "gelu",
        "norm_type": "layer_norm",
        "layer_norm_eps": 1e-6,
        "qkv_bias": True,
        "qk_normalization": False,
        "drop_path_rate": 0.1,
        "use_flash_attn": True,
    }
    config = {
        "architectures": ["InternVLChatModel"],
        "auto_map": {
            "AutoConfig": "configuration_internvl_chat.InternVLChatConfig",
            "AutoModel": "modeling_internvl_chat.InternVLChatModel",
        },
        "model_type": "internvl_chat",
        "downsample_ratio": 0.5,
        "dynamic_image_size": True,  # the paper uses one tile per frame; the adapter ignores this
        "force_image_size": shape.image_size,
        "max_dynamic_patch": 12,
        "ps_version": "v2",
        "select_layer": -1,
        "template": "phi3-chat",
        "torch_dtype": "bfloat16",
        "use_thumbnail": True,
        "llm_config": llm,
        "vision_config": vision,
    }
    (out / "config.json").write_text(json.dumps(config, indent=2))
    return out


# --- VideoLLaMA3's released format (DAMO-NLP-SG/VideoLLaMA3-7B) ------------------------------------
VIDEOLLAMA3_TINY = Shape(kv_heads=2, vision_layers=2)
# VideoLLaMA3-7B: Qwen2.5-7B (28 x 3584, 4 kv heads) over a SigLIP-so400m-sized encoder
VIDEOLLAMA3_7B = Shape(
    layers=28,
    hidden=3584,
    heads=28,
    kv_heads=4,
    intermediate=18944,
    vision_layers=27,
    vision_hidden=1152,
    vision_heads=16,
)
CHATML_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>"]


def qwen2_tokenizer(vocab_size: int = 600, **named_tokens: str):
    """A byte-level BPE tokenizer in Qwen2's class (GPT-2 pre-tokenizer, no BOS) with the ChatML
    tokens and VideoLLaMA3's `<image>`; `named_tokens` (e.g. `context_image_token="<IMG_CONTEXT>"`)
    become named special tokens, saved in tokenizer_config.json as a processor reads them."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<|endoftext|>"],
        show_progress=False,
    )
    backend.train_from_iterator(_CORPUS * 4, trainer)
    model = json.loads(backend.to_str())["model"]
    tok = Qwen2Tokenizer(vocab=model["vocab"], merges=[tuple(m) for m in model["merges"]], **named_tokens)
    tok.add_tokens(CHATML_TOKENS[1:] + list(named_tokens.values()), special_tokens=True)
    tok.eos_token = "<|im_end|>"
    return tok


def build_videollama3(shape: Shape, tok, seed: int, lm_head_scale: float = 30.0, device: str = "cpu"):
    """The random model in transformers' classes (the writer's source, and a test's expectation)."""
    from transformers import (
        Qwen2Config,
        VideoLlama3Config,
        VideoLlama3ForConditionalGeneration,
        VideoLlama3VisionConfig,
    )

    image = tok.convert_tokens_to_ids("<image>")
    config = VideoLlama3Config(
        text_config=Qwen2Config(
            **_qwen2_fields(shape, tok), rope_parameters={"rope_type": "default", "rope_theta": 1e6}
        ),
        vision_config=VideoLlama3VisionConfig(**_vision_fields(shape)),
        image_token_id=image,
        video_token_id=image,
        tie_word_embeddings=False,
    )
    return _build(VideoLlama3ForConditionalGeneration, config, seed, lm_head_scale, device)


def _qwen2_fields(shape: Shape, tok) -> dict:
    return dict(
        **shape.decoder_sizes(len(tok)),
        max_position_embeddings=32768,
        rms_norm_eps=1e-6,
        bos_token_id=tok.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
        tie_word_embeddings=False,
    )


def _vision_fields(shape: Shape) -> dict:
    return dict(
        hidden_size=shape.vision_hidden,
        intermediate_size=4 * shape.vision_hidden,
        num_hidden_layers=shape.vision_layers,
        num_attention_heads=shape.vision_heads,
        patch_size=14,
        hidden_act="gelu_pytorch_tanh",
        layer_norm_eps=1e-6,
    )


def write_videollama3(
    out: str | Path,
    shape: Shape = VIDEOLLAMA3_TINY,
    seed: int = 0,
    dtype: torch.dtype = torch.bfloat16,
    lm_head_scale: float = 30.0,
    device: str = "cpu",
) -> Path:
    """A random VideoLLaMA3 checkpoint in the released format: `videollama3_qwen2` config (Qwen2
    fields at the top level, `vision_encoder_config`, token compression on), `model.vision_encoder.*`
    / `model.mm_projector.readout.*` / `model.layers.*` weights in bf16, a processor config, and no code."""
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tok = qwen2_tokenizer()
    model = build_videollama3(shape, tok, seed, lm_head_scale, device)
    state = {
        VIDEOLLAMA3_RENAMES.released(k): v.to(dtype).cpu().contiguous() for k, v in model.state_dict().items()
    }
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    del model
    config = {
        "architectures": ["Videollama3Qwen2ForCausalLM"],
        "auto_map": {
            "AutoConfig": "configuration_videollama3.Videollama3Qwen2Config",
            "AutoModelForCausalLM": "modeling_videollama3.Videollama3Qwen2ForCausalLM",
        },
        "model_type": "videollama3_qwen2",
        **_qwen2_fields(shape, tok),
        "hidden_act": "silu",
        "rope_theta": 1e6,
        "use_sliding_window": False,
        "torch_dtype": "bfloat16",
        "image_token_index": tok.convert_tokens_to_ids("<image>"),
        "mm_projector_type": "mlp2x_gelu",
        "use_token_compression": True,
        "vision_encoder": None,
        "vision_encoder_config": {
            **_vision_fields(shape),
            "model_type": "videollama3_vision_encoder",
            "num_channels": 3,
        },
    }
    (out / "config.json").write_text(json.dumps(config, indent=2))
    (out / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "image_processor_type": "Videollama3ImageProcessor",
                "auto_map": {"AutoImageProcessor": "image_processing_videollama3.Videollama3ImageProcessor"},
                "image_mean": [0.5, 0.5, 0.5],
                "image_std": [0.5, 0.5, 0.5],
                "patch_size": 14,
                "min_tokens": 16,
                "max_tokens": 16384,
                "do_rescale": True,
                "rescale_factor": 1 / 255,
            },
            indent=2,
        )
    )
    tok.save_pretrained(out)
    return out

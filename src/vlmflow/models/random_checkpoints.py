"""Random-weight checkpoints written in the real on-disk formats, for tests and benchmarks.

- `write_pllava`: the authors' PLLaVA format of `byminji/LLaVA-NeXT-{7,13}B-Video-FT`: config
  `model_type "llava"`, architectures `PllavaForConditionalGeneration`, `pooling_shape`,
  `use_pooling`, `num_frames`, `vision_feature_layer -2`; weights `vision_tower.vision_model.*`,
  `multi_modal_projector.linear_{1,2}`, `language_model.model.*`, `language_model.lm_head`.
- `write_llava_next`: the llava-hf format of `llava-hf/llava-v1.6-vicuna-{7,13}b-hf` (the image
  bases): `model_type "llava_next"`, AnyRes grid pinpoints, an `image_newline` vector.

Both carry a Llama-style BPE tokenizer (Metaspace, byte fallback, BOS, `<image>` + `<pad>` added
after the vocabulary) and a CLIP image processor config, as the real repositories do. Sizes are
arguments, so the same writers give a tiny fixture or a 7B-shaped model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from vlmflow.prompt import MVBENCH_SYSTEM

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


@dataclass
class Shape:
    """Sizes of a LLaVA-style model: a Llama decoder over a CLIP vision tower."""

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


def llama_tokenizer(vocab_size: int = 400):
    """A Llama tokenizer trained on a small corpus: Metaspace pieces, byte fallback, BOS added;
    `<image>` and `<pad>` added after the vocabulary (ids vocab_size, vocab_size+1 as in PLLaVA)."""
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
    backend.train_from_iterator(_CORPUS * 4, trainer)
    model = json.loads(backend.to_str())["model"]
    tok = LlamaTokenizer(vocab=model["vocab"], merges=[tuple(m) for m in model["merges"]], add_bos_token=True)
    tok.add_special_tokens({"additional_special_tokens": ["<image>"], "pad_token": "<pad>"})
    return tok


def _configs(shape: Shape, vocab: int, image_token: int, pad_token: int):
    from transformers import CLIPVisionConfig, LlamaConfig

    text = LlamaConfig(
        vocab_size=vocab,
        hidden_size=shape.hidden,
        intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads,
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


def _hub_key(key: str) -> str:
    """transformers 5 module names -> the key names of the checkpoints on the hub."""
    for new, old in [
        ("lm_head.", "language_model.lm_head."),
        ("model.language_model.", "language_model.model."),
        ("model.vision_tower.", "vision_tower.vision_model."),
        ("model.multi_modal_projector.", "multi_modal_projector."),
        ("model.image_newline", "image_newline"),
    ]:
        if key.startswith(new):
            return old + key[len(new) :]
    raise KeyError(f"no hub name for parameter {key}")


def _save_weights(model, out: Path, dtype: torch.dtype) -> None:
    from safetensors.torch import save_file

    state = {_hub_key(k): v.to(dtype).cpu().contiguous() for k, v in model.state_dict().items()}
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


def _sparse(cfg) -> dict:
    """A sub-config as the hub stores it: only what differs from the class defaults."""
    return {**cfg.to_diff_dict(), "model_type": cfg.model_type}

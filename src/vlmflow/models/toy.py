"""The embedded toy VideoLLMs: tiny checkpoints of the LLaVA video family, built from transformers
classes (LlavaForConditionalGeneration with a CLIP vision tower and a Llama decoder), a real word-level
tokenizer with a chat template, and a CLIP image processor. Saved with `save_pretrained` and loaded
back through `vlmflow.models.llava_video`, exactly as a real checkpoint is. The words a toy knows and
the size of its frames come from the benchmark it is trained on (the training stage passes them).
"""

from __future__ import annotations

from pathlib import Path

from vlmflow.prompt import ANSWER_PREFIX, LETTERS, POST_QUESTION

SYSTEM_PROMPT = "Watch the video and choose the best option."
SPECIAL = ["<unk>", "<s>", "</s>", "<pad>", "<image>"]
PROMPT_WORDS = ["USER", "ASSISTANT", "Question", "Options", "Only", "give", "best", "option", "Best"]
PUNCT = [":", "(", ")", "?", "."]
GRID = (8, 3, 3)  # pooled video tokens: 8 frames of 3 x 3
CHAT_TEMPLATE = (
    "{{ bos_token }}{{ system }}\n USER: <image>\n USER: Question: {{ question }}\nOptions:"
    "{% for c in candidates %}{{ '\\n' }}({{ 'ABCDEFGH'[loop.index0] }}) {{ c }}{% endfor %}"
    + POST_QUESTION
    + " ASSISTANT:"
    + ANSWER_PREFIX
)


def build_tokenizer(words: list[str]):
    """Word-level fast tokenizer over the benchmark's `words` and the prompt's words."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = list(dict.fromkeys(SYSTEM_PROMPT.replace(".", " ").split() + PROMPT_WORDS + list(words)))
    vocab = {tok: i for i, tok in enumerate(SPECIAL + PUNCT + list(LETTERS[:4]) + words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation("isolated")]
    )
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", vocab["<s>"])]
    )
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"},
    )
    fast.add_special_tokens({"additional_special_tokens": ["<image>"]})
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_model(tokenizer, seed: int, image_size: int):
    """Random-init toy: CLIP tower (`image_size` px, patch 8, 2 layers, width 64) + Llama (8 layers,
    width 128)."""
    import torch
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    torch.manual_seed(seed)
    vision = CLIPVisionConfig(
        image_size=image_size,
        patch_size=8,
        hidden_size=64,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        projection_dim=64,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=512,
        num_hidden_layers=8,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
        tie_word_embeddings=False,
    )
    # PLLaVA fields, plus the toy's one departure (documented in the README)
    config.pooling_shape = list(GRID)
    config.num_frames = GRID[0]
    config.use_pooling = True
    config.video_position_ids = "frame_shared"
    return LlavaForConditionalGeneration(config)


def build_image_processor(s: int):
    from transformers import CLIPImageProcessorPil

    return CLIPImageProcessorPil(size={"shortest_edge": s}, crop_size={"height": s, "width": s})


def save(model, tokenizer, image_processor, out: Path) -> None:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    image_processor.save_pretrained(out)


def fresh(words: list[str], image_size: int, seed: int):
    """A random-init toy adapter (the start of the image stage)."""
    from vlmflow.models.llava_video import LlavaVideoAdapter

    tok = build_tokenizer(words)
    return LlavaVideoAdapter(
        build_model(tok, seed, image_size),
        tok,
        build_image_processor(image_size),
        system_prompt=SYSTEM_PROMPT,
    )


def load(path: str | Path):
    from vlmflow.models.llava_video import LlavaVideoAdapter

    return LlavaVideoAdapter.from_pretrained(str(path), system_prompt=SYSTEM_PROMPT)


def set_video_positions(adapter, mode: str) -> None:
    """ "frame_shared" (every frame reuses the same H*W positions) or "sequential"; saved with the model."""
    adapter.position_mode = adapter.model.config.video_position_ids = mode


def save_adapter(adapter, out: Path) -> None:
    save(adapter.model, adapter.tokenizer, adapter.image_processor, out)


def extend_vocabulary(adapter, words: list[str], seed: int):
    """The adapter with a tokenizer over its words and `words`: rows of known tokens are kept (by token
    text); a new token's input and output rows start at the mean of the existing rows plus seeded
    noise of a tenth of their spread (so no new token outscores the known answers).
    Returns the adapter unchanged when it knows every word already."""
    import torch
    from torch import nn

    old = adapter.tokenizer.get_vocab()
    fixed = set(SPECIAL + PUNCT + list(LETTERS[:4]))
    if set(words) <= set(old):
        return adapter
    tok = build_tokenizer(sorted((set(old) | set(words)) - fixed))
    new = tok.get_vocab()
    model = adapter.model
    gen = torch.Generator().manual_seed(seed)
    src = torch.tensor([old.get(t, -1) for t in sorted(new, key=new.get)])  # new id -> old id or -1

    def remap(weight: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(len(new), weight.shape[1], generator=gen) * 0.1 * weight.std(0)
        out = (weight.mean(0) + noise).to(weight.dtype)
        out[src >= 0] = weight[src[src >= 0]]
        return out

    with torch.no_grad():
        emb = model.get_input_embeddings()
        head = model.get_output_embeddings()
        new_emb = nn.Embedding(len(new), emb.weight.shape[1], padding_idx=emb.padding_idx)
        new_emb.weight.copy_(remap(emb.weight.detach().cpu()))
        new_head = nn.Linear(head.weight.shape[1], len(new), bias=False)
        new_head.weight.copy_(remap(head.weight.detach().cpu()))
    model.set_input_embeddings(new_emb.to(emb.weight.device))
    model.set_output_embeddings(new_head.to(head.weight.device))
    model.config.text_config.vocab_size = len(new)
    model.config.image_token_id = new["<image>"]
    adapter.tokenizer = tok
    return adapter

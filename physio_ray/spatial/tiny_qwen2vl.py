"""A tiny, randomly initialised Qwen2-VL with a processor built offline, and the model loader.

Locally and in tests the spatial trainer runs the *same* code path as on the cluster
(``Qwen2VLForConditionalGeneration`` + ``Qwen2VLProcessor`` + PEFT + TRL), only smaller:

* **Tokenizer (our choice, documented here).** The real Qwen2 tokenizer cannot be fetched
  (nothing downloads at run time), and SmolLM2's tokenizer (the other offline option, through
  :mod:`physio_ray.llm.smollm2`) needs its safetensors cache or a GGUF conversion of tens of
  seconds and brings a 49k-row embedding. We instead *train* a byte-level BPE tokenizer in code
  (``tokenizers``, ~0.1 s) on the strings the spatial dataset can produce: every prompt template,
  instrument, region, step and digit. Digits are split one per token, so coordinates are
  spelled digit by digit. Byte-level means any text still encodes (no unknown token). The
  Qwen2-VL special tokens (``<|im_start|>``, ``<|vision_start|>``, ``<|image_pad|>``, ...) are
  added, so ``Qwen2VLProcessor`` expands images exactly as it does for the real model.
* **Image / video processors:** ``Qwen2VLImageProcessor`` and ``Qwen2VLVideoProcessor``
  constructed directly (patch 14, merge 2, temporal patch 2 as the real model), with a pixel
  budget small enough for rendered 256x144 frames (180 patches -> 45 image tokens).
* **Chat template:** a short Qwen-style template (``<|im_start|>role ... <|im_end|>``) with
  ``{% generation %}`` markers so assistant-only loss masks work.
* **Model:** ``Qwen2VLConfig`` with 2 text layers of width 64 and a 1-block vision tower of
  width 32, random init from a seed (~0.2 M parameters; the local training config widens the
  vision tower to 2 blocks of 64, ~0.35 M).

Everything is deterministic: the same config gives the same tokenizer ids and the same weights.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from physio_ray.spatial.pitvqa import INSTRUMENTS, STEPS
from physio_ray.spatial.records import (
    NONE_ANSWER,
    PROMPT_NAMED,
    PROMPT_PRIMARY,
    PROMPT_STAGE2,
    display_name,
    point_answer,
    step_display,
)

logger = logging.getLogger(__name__)

__all__ = [
    "CHAT_TEMPLATE",
    "SPECIAL_TOKENS",
    "TINY_MODEL_NAME",
    "TinyQwen2VLSpec",
    "build_processor",
    "build_tiny_model",
    "build_tokenizer",
    "load_model_and_processor",
]

TINY_MODEL_NAME = "tiny-qwen2vl"
"""The ``model.name`` value that selects the in-code tiny Qwen2-VL."""

PAD, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD = "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"
SPECIAL_TOKENS = (PAD, IM_START, IM_END, VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD)

CHAT_TEMPLATE = (
    "{%- macro render(content) -%}"
    "{%- if content is string %}{{ content }}"
    "{%- else %}{%- for part in content -%}"
    "{%- if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{%- elif part['type'] == 'text' %}{{ part['text'] }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{%- endmacro -%}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "<|im_start|>assistant\n{% generation %}{{ render(message['content']) }}<|im_end|>{% endgeneration %}\n"
    "{%- else -%}<|im_start|>{{ message['role'] }}\n{{ render(message['content']) }}<|im_end|>\n{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif -%}"
)
"""Qwen-style chat template; the assistant turn (and its ``<|im_end|>``) is the generation span."""


@dataclass(frozen=True)
class TinyQwen2VLSpec:
    """Sizes of the tiny Qwen2-VL (see the module docstring).

    Attributes:
        hidden_size: text width (divisible by ``num_heads``; ``hidden_size / num_heads`` even).
        num_layers: text decoder layers.
        num_heads: text attention heads.
        num_kv_heads: key/value heads (divides ``num_heads``).
        intermediate_size: text MLP width.
        vision_depth: vision transformer blocks.
        vision_width: vision embedding width (divisible by ``vision_heads``).
        vision_heads: vision attention heads.
        vocab_size: target size of the BPE tokenizer trained in code.
        min_pixels: image processor pixel floor.
        max_pixels: image processor pixel budget (256x144 -> 252x140 -> 45 image tokens).
        rope_theta: text rotary base. With the default 10000 and head width 16 the height/width
            sections of mrope get only frequencies <= 0.01 rad per position, so the image rows
            and columns (0-9 merged tokens) are almost indistinguishable to the text model.
            Neither tower has an absolute position embedding (Qwen2-VL's rotary is relative), so
            then nothing tells the model *where* the tip is: trained that way it stays at the
            majority region. ``configs/train_spatial/local.yaml`` uses 30 with
            ``spatial_rope_share`` 0.5 (height and width get 4 frequencies each, 1.0 to 0.05 rad).
        spatial_rope_share: share of each head's rotary half given to height and to width each
            (floor; the default 1/3 gives the original ``[4, 2, 2]`` split of 8).
        initializer_range: standard deviation of the random init of every weight matrix (both
            towers). Qwen2-VL's 0.02 suits widths in the thousands; at width 64 it makes every
            attention logit ~0.03, so the text model attends uniformly over the image tokens and
            their features get no gradient that tells them apart.
        seed: weight initialisation seed.
    """

    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 128
    vision_depth: int = 1
    vision_width: int = 32
    vision_heads: int = 2
    vocab_size: int = 400
    min_pixels: int = 28 * 28 * 4
    max_pixels: int = 256 * 144
    rope_theta: float = 10000.0
    spatial_rope_share: float = 1 / 3
    initializer_range: float = 0.02
    seed: int = 0

    def __post_init__(self) -> None:
        head = self.hidden_size // max(1, self.num_heads)
        if self.hidden_size % self.num_heads or head % 2 or self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"tiny model: hidden_size={self.hidden_size} must split into num_heads={self.num_heads} heads of even "
                f"width, and num_kv_heads={self.num_kv_heads} must divide num_heads"
            )
        if self.vision_width % self.vision_heads:
            raise ValueError(f"tiny model: vision_width={self.vision_width} must divide by vision_heads")
        if self.rope_theta <= 1.0 or not 0.0 < self.spatial_rope_share <= 0.5:
            raise ValueError(
                f"tiny model: rope_theta={self.rope_theta} must be > 1 and "
                f"spatial_rope_share={self.spatial_rope_share} in (0, 0.5]"
            )
        if not 0.0 < self.initializer_range < 1.0:
            raise ValueError(f"tiny model: initializer_range={self.initializer_range} must be in (0, 1)")
        if not 0 < self.min_pixels <= self.max_pixels:
            raise ValueError(f"tiny model: need 0 < min_pixels ({self.min_pixels}) <= max_pixels ({self.max_pixels})")


def tokenizer_corpus() -> list[str]:
    """Every string the spatial prompts and answers are built from (the BPE training corpus)."""
    names = sorted(INSTRUMENTS.values())
    texts = [PROMPT_PRIMARY, PROMPT_STAGE2, NONE_ANSWER, "No instrument is visible."]
    texts += [PROMPT_NAMED.format(name=display_name(n)) for n in names]
    texts += [f"Current step: **{step_display(s)}**" for s in STEPS.values()]
    for i, name in enumerate(names):
        for cls in (1, 2, 3, 4, 5):
            x, y = (7 * i + 13 * cls) % 100 + 0.1 * cls, (11 * i + 17 * cls) % 100 + 0.1 * (i % 10)
            texts.append(point_answer(name, cls, x, y))
            texts.append(f"Primary instrument: {point_answer(name, cls, y, x)}")
    return texts


def build_tokenizer(vocab_size: int = 400) -> Any:
    """Trains the byte-level BPE tokenizer on :func:`tokenizer_corpus` and wraps it for transformers.

    Args:
        vocab_size: BPE target size (the byte alphabet and special tokens included).

    Returns:
        A fast tokenizer (``PreTrainedTokenizerFast`` family) with ``<|im_end|>`` as EOS and
        ``<|endoftext|>`` as padding, plus the Qwen2-VL special tokens.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(tokenizer_corpus(), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=IM_END, pad_token=PAD)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_processor(spec: TinyQwen2VLSpec | None = None) -> Any:
    """A ``Qwen2VLProcessor`` built without any download (see the module docstring).

    Args:
        spec: tiny-model sizes (tokenizer size, pixel budget); default :class:`TinyQwen2VLSpec`.

    Returns:
        The processor; ``processor.tokenizer`` pads on the left for generation.
    """
    from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

    spec = spec or TinyQwen2VLSpec()
    tokenizer = build_tokenizer(spec.vocab_size)
    image_processor = Qwen2VLImageProcessor(min_pixels=spec.min_pixels, max_pixels=spec.max_pixels)
    return Qwen2VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=CHAT_TEMPLATE,
    )


def build_tiny_model(processor: Any, spec: TinyQwen2VLSpec | None = None) -> Any:
    """A randomly initialised ``Qwen2VLForConditionalGeneration`` matching ``processor``.

    Args:
        processor: from :func:`build_processor` (its tokenizer gives the vocabulary and special ids).
        spec: sizes; default :class:`TinyQwen2VLSpec`.

    Returns:
        The model in float32 on CPU, train mode off.
    """
    import torch
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    spec = spec or TinyQwen2VLSpec()
    tok = processor.tokenizer
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    head = spec.hidden_size // spec.num_heads
    # mrope splits each head's rotary half (head/2) over (time, height, width).
    half = head // 2
    hw = max(1, int(half * spec.spatial_rope_share + 1e-9))
    mrope = [half - 2 * hw, hw, hw]
    special = {"bos_token_id": None, "eos_token_id": ids[IM_END], "pad_token_id": ids[PAD]}
    config = Qwen2VLConfig(
        text_config={
            "vocab_size": len(tok),
            "hidden_size": spec.hidden_size,
            "intermediate_size": spec.intermediate_size,
            "num_hidden_layers": spec.num_layers,
            "num_attention_heads": spec.num_heads,
            "num_key_value_heads": spec.num_kv_heads,
            "max_position_embeddings": 2048,
            "rope_parameters": {"rope_type": "default", "rope_theta": spec.rope_theta, "mrope_section": mrope},
            "tie_word_embeddings": False,
            "initializer_range": spec.initializer_range,
            **special,
        },
        vision_config={
            "depth": spec.vision_depth,
            "embed_dim": spec.vision_width,
            "hidden_size": spec.hidden_size,
            "num_heads": spec.vision_heads,
            "mlp_ratio": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "initializer_range": spec.initializer_range,
        },
        image_token_id=ids[IMAGE_PAD],
        video_token_id=ids[VIDEO_PAD],
        vision_start_token_id=ids[VISION_START],
        vision_end_token_id=ids[VISION_END],
        tie_word_embeddings=False,
        **special,
    )
    with torch.random.fork_rng():  # seeded init without touching the caller's RNG
        torch.manual_seed(spec.seed)
        model = Qwen2VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = ids[IM_END]
    model.generation_config.pad_token_id = ids[PAD]
    model.generation_config.bos_token_id = None
    return model.eval()


def load_model_and_processor(
    name: str,
    spec: TinyQwen2VLSpec | None = None,
    dtype: str = "float32",
    min_pixels: int | None = None,
    max_pixels: int | None = None,
) -> tuple[Any, Any]:
    """Loads ``(model, processor)``: the tiny in-code model, a saved folder, or a hub name.

    Args:
        name: :data:`TINY_MODEL_NAME`, a local folder written by ``save_pretrained`` (model and
            processor), or a hub id such as ``"Qwen/Qwen2-VL-2B-Instruct"`` (cluster; must be in
            the local HF cache unless ``HF_HUB_OFFLINE`` is unset).
        spec: tiny-model sizes (used only for :data:`TINY_MODEL_NAME`).
        dtype: ``"float32"``, ``"bfloat16"`` or ``"float16"``.
        min_pixels: image processor pixel floor override (real models).
        max_pixels: image processor pixel budget override (real models).

    Returns:
        ``(Qwen2VLForConditionalGeneration, Qwen2VLProcessor)``.
    """
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    if name == TINY_MODEL_NAME:
        processor = build_processor(spec)
        model = build_tiny_model(processor, spec)
        return model.to(getattr(torch, dtype)), processor
    local = os.path.isdir(name)
    kwargs: dict[str, Any] = {}
    if min_pixels is not None:
        kwargs["min_pixels"] = min_pixels
    if max_pixels is not None:
        kwargs["max_pixels"] = max_pixels
    processor = AutoProcessor.from_pretrained(name, local_files_only=local, **kwargs)
    model = AutoModelForImageTextToText.from_pretrained(name, dtype=getattr(torch, dtype), local_files_only=local)
    if processor.chat_template is None and getattr(processor.tokenizer, "chat_template", None):
        processor.chat_template = processor.tokenizer.chat_template
    logger.info("loaded %s (%d parameters)", name, sum(p.numel() for p in model.parameters()))
    return model, processor

"""The two-tower process reward model (seed 000 §3.3): text LM + vision tower + fusion + (+/-) head.

::

    input_ids ──► text tower (HF causal LM; frozen | LoRA | full) ──► hidden [B, L, H]
    vision [B, T, F] or [B, T, 3, H, W] ──► pose encoder | open_clip tower ──► [B, T, D]
    hidden, vision ──► gated cross-attention (residual, LayerNorm) ──► fused [B, L, H]
    fused ──► head: 2 rows = lm_head rows of " +" and " -" ──► (+, -) logits [B, L, 2]

The head starts as a copy of the LM's own ``lm_head`` rows for the "+" and "-" tokens (as
Med-PRM reads those two logits of the full LM head), and the fusion gate starts at 0. So
the untrained PRM scores exactly as the text LM would: a frozen-tower baseline starts from
the LM's own preference between "+" and "-" after each step marker, and training only has
to learn a correction. The step marker is one new token; its embedding row starts as the
mean of the rows of the pieces it used to be split into.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any

import torch
from torch import nn

from physio_ray.prm.config import PRMModelConfig, PromptConfig, TextTowerConfig
from physio_ray.prm.tokenize import PRMTokenizer
from physio_ray.prm.vision import ClipImageTower, CrossAttentionFusion, PoseSequenceEncoder

logger = logging.getLogger(__name__)

MODEL_KEYS = ("input_ids", "attention_mask", "vision", "vision_mask", "text_hidden")  # PRMModel.forward inputs


def load_text_tower(cfg: TextTowerConfig) -> tuple[Any, Any]:
    """Loads a private (mutable) copy of the causal LM named by ``cfg.model`` and its tokenizer.

    ``smollm2-135m`` is the embedded model (offline); anything else is an HF name or path,
    read from the local HF cache unless ``PHYSIO_RAY_ALLOW_DOWNLOAD=1`` (see
    :func:`physio_ray.llm.smollm2.load_causal_lm`).

    Returns:
        ``(model, tokenizer)``.
    """
    from physio_ray.llm.smollm2 import load_causal_lm

    model, tokenizer = load_causal_lm(cfg.model, cfg.dtype, memo=False)
    if cfg.num_layers is not None:
        truncate_layers(model, cfg.num_layers)
    return model, tokenizer


def truncate_layers(model: Any, k: int) -> None:
    """Keeps the first ``k`` decoder layers of an HF causal LM in place (the final norm stays).

    Raises:
        ValueError: when the model does not expose ``model.layers`` or has fewer than ``k``.
    """
    base: Any = getattr(model, "model", None)
    layers = getattr(base, "layers", None)
    if layers is None:
        raise ValueError(f"text.num_layers: cannot find decoder layers on {type(model).__name__}")
    if k > len(layers):
        raise ValueError(f"text.num_layers={k} exceeds the model's {len(layers)} layers")
    base.layers = layers[:k]
    model.config.num_hidden_layers = k
    if hasattr(model.config, "layer_types") and model.config.layer_types is not None:
        model.config.layer_types = model.config.layer_types[:k]
    logger.info("text tower truncated to its first %d of %d layers", k, len(layers))


def load_text_tokenizer(cfg: TextTowerConfig) -> Any:
    """Loads only the tokenizer of the text tower (for tokenisation and tests).

    The embedded SmolLM2 tokenizer is read from its ``tokenizer.json`` with
    ``PreTrainedTokenizerFast`` (seconds; ``AutoTokenizer`` takes tens of seconds on it).
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    from physio_ray.llm.smollm2 import SMOLLM2_NAME, build_smollm2_cache

    if cfg.model == SMOLLM2_NAME:
        return PreTrainedTokenizerFast.from_pretrained(str(build_smollm2_cache()), local_files_only=True)
    local_only = os.environ.get("PHYSIO_RAY_ALLOW_DOWNLOAD", "") != "1"
    return AutoTokenizer.from_pretrained(cfg.model, local_files_only=local_only)


class PRMModel(nn.Module):
    """Scores "+" vs "-" at every position; read the scores at the step markers.

    Args:
        text_model: an HF causal LM (modified in place: marker row added, freezing/LoRA).
        prm_tok: the tokenizer wrapper (gives the marker, "+" and "-" ids).
        cfg: model settings.

    Raises:
        ValueError: on an unusable configuration (e.g. fusion heads vs hidden size).
    """

    def __init__(self, text_model: Any, prm_tok: PRMTokenizer, cfg: PRMModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.text_mode = cfg.text.mode
        _add_marker_row(text_model, prm_tok)
        lm_head = text_model.get_output_embeddings()
        rows = lm_head.weight.detach()[[prm_tok.plus_id, prm_tok.minus_id]].float().clone()
        hidden = int(rows.shape[1])
        self.head = nn.Linear(hidden, 2, bias=getattr(lm_head, "bias", None) is not None)
        with torch.no_grad():
            self.head.weight.copy_(rows)
            if self.head.bias is not None:
                self.head.bias.copy_(lm_head.bias.detach()[[prm_tok.plus_id, prm_tok.minus_id]].float())
        self.head.requires_grad_(cfg.text.train_head)
        self.text = _prepare_text(text_model, cfg.text)
        kind = cfg.vision.kind
        self.vision: nn.Module | None = None
        self.fusion: CrossAttentionFusion | None = None
        if kind != "none":
            self.vision = PoseSequenceEncoder(cfg.vision.pose) if kind == "pose" else ClipImageTower(cfg.vision.clip)
            out_dim = int(self.vision.out_dim)  # type: ignore[arg-type]
            f = cfg.fusion
            self.fusion = CrossAttentionFusion(hidden, out_dim, f.heads, f.dropout, f.gate_init)

    def train(self, mode: bool = True) -> PRMModel:
        """Sets training mode; a frozen text tower always stays in eval mode."""
        super().train(mode)
        if self.text_mode == "frozen":
            self.text.eval()
        return self

    def text_parameters(self) -> list[nn.Parameter]:
        """Trainable parameters of the text tower (LoRA adapters or all weights)."""
        return [p for p in self.text.parameters() if p.requires_grad]

    def new_parameters(self) -> list[nn.Parameter]:
        """Trainable parameters outside the text tower (head, vision tower, fusion)."""
        text_ids = {id(p) for p in self.text.parameters()}
        return [p for p in self.parameters() if p.requires_grad and id(p) not in text_ids]

    def encode_text(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, share_prefix: bool = False
    ) -> torch.Tensor:
        """Final hidden states of the text tower (after its last norm), as float32.

        Args:
            input_ids: int64 ``[B, L]``.
            attention_mask: int64 ``[B, L]``.
            share_prefix: run the token prefix that rows share once per group of rows
                (:mod:`physio_ray.prm.prefix`; right-padded batches, no gradient only).

        Returns:
            float32 ``[B, L, H]``; detached when the tower is frozen (cacheable).
        """
        ctx = torch.no_grad() if self.text_mode == "frozen" else contextlib.nullcontext()
        with ctx:
            decoder = _decoder(self.text)
            if decoder is not None and share_prefix and not torch.is_grad_enabled():
                from physio_ray.prm.prefix import shared_hidden_states

                hidden = shared_hidden_states(decoder, input_ids, attention_mask)
            elif decoder is not None:
                hidden = decoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            else:
                out = self.text(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
                hidden = out.hidden_states[-1]
        return hidden.float()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        vision: torch.Tensor | None = None,
        vision_mask: torch.Tensor | None = None,
        text_hidden: torch.Tensor | None = None,
        share_prefix: bool = False,
    ) -> torch.Tensor:
        """(+, -) logits at every position.

        Args:
            input_ids: int64 ``[B, L]``.
            attention_mask: int64 ``[B, L]``.
            vision: float32 ``[B, T, F]`` (pose) or ``[B, T, 3, H, W]`` (clip); ``None``
                for a text-only batch.
            vision_mask: bool ``[B, T]``; rows with no True are scored text-only.
            text_hidden: precomputed :meth:`encode_text` output (frozen tower only).
            share_prefix: see :meth:`encode_text` (scoring: one question's candidates share
                their prompt up to the solution).

        Returns:
            float32 ``[B, L, 2]``: column 0 scores "+", column 1 scores "-".

        Raises:
            ValueError: when ``text_hidden`` is given for a trainable text tower.
        """
        if text_hidden is None:
            text_hidden = self.encode_text(input_ids, attention_mask, share_prefix)
        elif self.text_mode != "frozen":
            raise ValueError("text_hidden can only be reused with a frozen text tower (text.mode=frozen)")
        fused = text_hidden.float()
        if self.vision is not None and self.fusion is not None and vision is not None:
            if vision_mask is None:
                vision_mask = torch.ones(vision.shape[:2], dtype=torch.bool, device=vision.device)
            tokens = self.vision(vision, vision_mask)
            fused = self.fusion(fused, tokens, vision_mask)
        return self.head(fused)

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The trained part of the model (head, vision, fusion, LoRA or full text weights), on CPU."""
        return {n: p.detach().cpu() for n, p in self.named_parameters() if p.requires_grad}

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Loads what :meth:`trainable_state_dict` saved.

        Raises:
            KeyError: when a trainable parameter is missing from ``state`` or a key is unknown.
        """
        expected = {n for n, p in self.named_parameters() if p.requires_grad}
        missing = sorted(expected - set(state))
        unknown = sorted(set(state) - {n for n, _ in self.named_parameters()})
        if missing or unknown:
            raise KeyError(f"checkpoint does not match the model: missing {missing[:5]}, unknown {unknown[:5]}")
        self.load_state_dict(state, strict=False)


def to_device(batch: dict[str, Any], device: torch.device | str) -> dict[str, Any]:
    """Moves the tensors of a batch to ``device`` (other values are kept)."""
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def model_inputs(batch: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of :meth:`PRMModel.forward` present in a batch."""
    return {k: batch[k] for k in MODEL_KEYS if batch.get(k) is not None}


def build_prm_model(
    cfg: PRMModelConfig,
    prompt: PromptConfig | None = None,
    text_model: Any = None,
    tokenizer: Any = None,
) -> tuple[PRMModel, PRMTokenizer]:
    """Builds the PRM and its tokenizer wrapper.

    Args:
        cfg: model settings.
        prompt: prompt settings for the tokenizer wrapper.
        text_model: an already loaded causal LM (loaded from ``cfg.text`` when ``None``).
        tokenizer: its tokenizer (required with ``text_model``).

    Returns:
        ``(model, prm_tokenizer)``.

    Raises:
        ValueError: when only one of ``text_model`` / ``tokenizer`` is given.
    """
    if (text_model is None) != (tokenizer is None):
        raise ValueError("pass both text_model and tokenizer, or neither")
    if text_model is None:
        text_model, tokenizer = load_text_tower(cfg.text)
    prm_tok = PRMTokenizer(tokenizer, prompt, cfg.plus_token, cfg.minus_token)
    return PRMModel(text_model, prm_tok, cfg), prm_tok


def _add_marker_row(model: Any, prm_tok: PRMTokenizer) -> None:
    if model.get_input_embeddings().weight.shape[0] <= prm_tok.marker_id:
        model.resize_token_embeddings(len(prm_tok), mean_resizing=False)
    if not prm_tok.marker_piece_ids:  # the tokenizer already knew the marker: keep its row
        return
    emb = model.get_input_embeddings()
    with torch.no_grad():
        emb.weight[prm_tok.marker_id] = emb.weight[prm_tok.marker_piece_ids].mean(0)
    logger.info("step marker is token %d (embedding = mean of pieces %s)", prm_tok.marker_id, prm_tok.marker_piece_ids)


def _prepare_text(model: Any, cfg: TextTowerConfig) -> Any:
    if cfg.mode == "frozen":
        model.requires_grad_(False)
        model.eval()
        return model
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        if hasattr(model, "enable_input_require_grads"):
            model.enable_input_require_grads()
    if cfg.mode == "full":
        model.requires_grad_(True)
        return model
    from peft import get_peft_model

    return get_peft_model(model, cfg.lora.to_peft("CAUSAL_LM"))


def _decoder(model: Any) -> Any:
    """The backbone that returns ``last_hidden_state`` (after the final norm), if exposed."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    get = getattr(base, "get_decoder", None)
    if not callable(get):
        return None
    try:
        decoder = get()
    except (AttributeError, NotImplementedError):
        return None
    return decoder if decoder is not None and decoder is not base else None

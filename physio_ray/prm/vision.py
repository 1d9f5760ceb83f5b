"""Vision towers of the PRM: keyframe pose sequences or keyframe images -> vision tokens.

Both towers map a padded batch plus its validity mask to tokens ``[B, T, D]`` (``D`` =
``out_dim``); the fusion layer projects them to the text width and ignores padded slots.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from physio_ray.prm.config import ClipTowerConfig, PoseTowerConfig

logger = logging.getLogger(__name__)


class PoseSequenceEncoder(nn.Module):
    """Small transformer (or GRU) over keyframe pose features; no weights to download.

    Missing values (NaN: joint not visible) are zeroed and flagged with an indicator
    feature, so the encoder sees ``2F`` inputs per keyframe.

    Args:
        cfg: encoder settings.
    """

    def __init__(self, cfg: PoseTowerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.out_dim = cfg.d_model
        self.inp = nn.Linear(2 * cfg.input_dim, cfg.d_model)
        self.pos = nn.Parameter(torch.zeros(cfg.max_keyframes, cfg.d_model))
        nn.init.normal_(self.pos, std=0.02)
        if cfg.encoder == "transformer":
            layer = nn.TransformerEncoderLayer(
                cfg.d_model, cfg.heads, 4 * cfg.d_model, cfg.dropout, batch_first=True, norm_first=True
            )
            self.encoder: nn.Module = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        else:
            self.encoder = nn.GRU(cfg.d_model, cfg.d_model, cfg.layers, batch_first=True)
        self.norm = nn.LayerNorm(cfg.d_model)

    def forward(self, feats: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Encodes keyframe features.

        Args:
            feats: float ``[B, T, F]`` (NaN allowed).
            mask: bool ``[B, T]``, True for real keyframes.

        Returns:
            float32 ``[B, T, d_model]`` (padded slots hold values the fusion ignores).

        Raises:
            ValueError: when ``F`` or ``T`` does not fit the configuration.
        """
        b, t, f = feats.shape
        if f != self.cfg.input_dim:
            raise ValueError(f"pose tower expects {self.cfg.input_dim} features per keyframe, got {f}")
        if t > self.cfg.max_keyframes:
            raise ValueError(f"{t} keyframes exceed vision.pose.max_keyframes={self.cfg.max_keyframes}")
        missing = torch.isnan(feats)
        x = torch.nan_to_num(feats.float() * self.cfg.feature_scale, nan=0.0)
        x = torch.cat([x, missing.float()], dim=-1) * mask[..., None]
        h = self.inp(x) + self.pos[:t]
        if isinstance(self.encoder, nn.GRU):
            h, _ = self.encoder(h)
        else:
            pad = ~mask
            pad[~mask.any(-1), 0] = False  # a row with no keyframe attends to one dummy slot (no NaN)
            h = self.encoder(h, src_key_padding_mask=pad)
        return self.norm(h)


class ClipImageTower(nn.Module):
    """The image tower of an open_clip model over keyframe images.

    Built from an open_clip architecture name; ``pretrained=None`` builds random weights
    offline (tests), a tag or an ``hf-hub:`` name (e.g. BiomedCLIP) loads weights on the
    cluster.

    Args:
        cfg: tower settings.
    """

    def __init__(self, cfg: ClipTowerConfig) -> None:
        super().__init__()
        import open_clip

        kwargs = {"force_image_size": cfg.image_size} if cfg.image_size else {}
        clip = open_clip.create_model(cfg.arch, pretrained=cfg.pretrained, **kwargs)
        self.visual = clip.visual
        del clip
        self.out_dim = int(getattr(self.visual, "output_dim", 0) or _probe_dim(self.visual, cfg))
        if not cfg.trainable:
            self.visual.requires_grad_(False)
        self.cfg = cfg

    def forward(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Embeds the real keyframe images.

        Args:
            images: float ``[B, T, 3, H, W]`` (already normalised for the tower).
            mask: bool ``[B, T]``.

        Returns:
            float32 ``[B, T, out_dim]``, zeros at padded slots.

        Raises:
            ValueError: when ``images`` is not 5-dimensional.
        """
        if images.dim() != 5:
            raise ValueError(f"clip tower expects images [B, T, 3, H, W], got shape {tuple(images.shape)}")
        b, t = images.shape[:2]
        out = images.new_zeros((b, t, self.out_dim), dtype=torch.float32)
        if mask.any():
            dtype = next(self.visual.parameters()).dtype
            emb = self.visual(images[mask].to(dtype))
            if isinstance(emb, tuple):
                emb = emb[0]
            out[mask] = emb.float()
        return out


def _probe_dim(visual: nn.Module, cfg: ClipTowerConfig) -> int:
    size = cfg.image_size or 224
    with torch.no_grad():
        emb = visual(torch.zeros(1, 3, size, size))
    return int((emb[0] if isinstance(emb, tuple) else emb).shape[-1])


class CrossAttentionFusion(nn.Module):
    """Text hidden states attend over vision tokens; gated residual, LayerNorm on both inputs.

    ``out = text + tanh(gate) * Attn(LN(text), LN(vision), LN(vision))``. With the gate at 0
    the output equals the text hidden states exactly, so an untrained multimodal PRM scores
    like its text tower. Rows without any vision token get no update (text-only mode).

    Args:
        hidden: text width (the attention width).
        vision_dim: width of the vision tokens (projected to ``hidden``).
        heads: attention heads (must divide ``hidden``).
        dropout: attention dropout.
        gate_init: initial gate value.

    Raises:
        ValueError: when ``heads`` does not divide ``hidden``.
    """

    def __init__(self, hidden: int, vision_dim: int, heads: int, dropout: float, gate_init: float) -> None:
        super().__init__()
        if hidden % heads:
            raise ValueError(f"fusion.heads={heads} must divide the text hidden size {hidden}")
        self.proj = nn.Linear(vision_dim, hidden)
        self.ln_text = nn.LayerNorm(hidden)
        self.ln_vision = nn.LayerNorm(hidden)
        self.attn = nn.MultiheadAttention(hidden, heads, dropout=dropout, batch_first=True)
        self.gate = nn.Parameter(torch.tensor(float(gate_init)))

    def forward(self, text: torch.Tensor, vision: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Fuses vision into text.

        Args:
            text: float32 ``[B, L, H]``.
            vision: float32 ``[B, T, vision_dim]``.
            mask: bool ``[B, T]``, True for real vision tokens.

        Returns:
            float32 ``[B, L, H]``.
        """
        has = mask.any(-1)
        if not bool(has.any()):
            return text
        v = self.ln_vision(self.proj(vision))
        pad = ~mask
        pad[~has, 0] = False  # keep softmax finite for text-only rows; their update is zeroed
        delta, _ = self.attn(self.ln_text(text), v, v, key_padding_mask=pad, need_weights=False)
        delta = delta * has[:, None, None].to(delta.dtype)
        return text + torch.tanh(self.gate) * delta

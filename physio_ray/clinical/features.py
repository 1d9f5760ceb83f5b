"""Phase 1 of seed 002: image -> CLIP embedding -> nearest finding descriptions -> text context.

An open_clip model encodes each image (``encode_image``) and a small bank of short finding
descriptions (``finding_bank.jsonl``, ``encode_text``); cosine similarity of the L2-normalised
embeddings ranks the bank, and the top descriptions become the ``[IMAGE_FEATURES]`` context of
the text model's prompt (:mod:`physio_ray.clinical.prompts`).

Two ways to build the model, one code path:

* cluster: ``model_name="hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"``
  (BiomedCLIP's architecture and weights, which must already be in the HF cache; loading runs
  with ``HF_HUB_OFFLINE=1`` unless the environment sets it otherwise);
* laptop / tests: a built-in architecture name such as ``"ViT-S-32-alt"`` with
  ``pretrained=None``, optionally shrunk with ``vision_overrides`` / ``text_overrides``: the
  weights are **random** (seeded by ``init_seed``). With random weights the nearest description
  is meaningless: the code path (preprocess, encode, normalise, cosine, rank, render) is real,
  the clinical content is not. Never report accuracy from a random-weight context as a Phase 1 result.

The featurizer is a plain class: ``__init__`` loads, ``__call__(batch)`` maps a Ray Data batch
(numpy format) with an ``image_path`` column to embeddings and contexts; the pipeline owner
wires it with ``map_batches``. A row whose image cannot be read gets ``error`` set and keeps flowing.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from physio_ray.clinical.images import load_rgb
from physio_ray.schemas import ERROR

logger = logging.getLogger(__name__)

__all__ = [
    "FINDING_IDS",
    "FINDING_SCORES",
    "IMAGE_CONTEXT",
    "IMAGE_EMBEDDING",
    "IMAGE_PATH",
    "MODALITY",
    "BankEntry",
    "ImageFeaturizer",
    "Match",
    "VisionFeatureConfig",
    "load_finding_bank",
    "render_context",
]

# Columns read and added by ImageFeaturizer.__call__.
IMAGE_PATH = "image_path"  # str: image file to encode (read)
MODALITY = "modality"  # str: restricts the bank to this modality when present (read)
IMAGE_EMBEDDING = "image_embedding"  # list[float]: [embed_dim] L2-normalised; empty on error
FINDING_IDS = "finding_ids"  # list[str]: top-k bank ids, best first
FINDING_SCORES = "finding_scores"  # list[float]: their cosine similarities
IMAGE_CONTEXT = "image_context"  # str: rendered text for the prompt ("" on error)

BIOMEDCLIP = "hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"
_BANK_FIELDS = ("id", "modality", "polarity", "text")


@dataclass(frozen=True)
class VisionFeatureConfig:
    """Which open_clip model encodes images, and how matches are chosen.

    Attributes:
        model_name: open_clip name: a built-in architecture (``"ViT-S-32-alt"``, ``"ViT-B-32"``)
            or ``hf-hub:...`` (BiomedCLIP on the cluster).
        pretrained: open_clip pretrained tag or checkpoint file; ``None`` builds a built-in
            architecture with random weights (hf-hub names bring their own weights).
        init_seed: seed of the random initialisation (built-in names without weights).
        image_size: override of the vision tower's input size (``None``: the architecture's).
        vision_overrides: keys merged into the architecture's ``vision_cfg`` (e.g. ``{"layers": 2}``).
        text_overrides: keys merged into its ``text_cfg``.
        device: torch device.
        batch_size: images per forward pass.
        top_k: descriptions kept per image.
        same_modality: only rank bank entries of the image's modality, when it is known.
        bank_path: finding bank JSONL (``None``: the packaged ``finding_bank.jsonl``).
        context_prefix: text put before the descriptions in the rendered context.
    """

    model_name: str = "ViT-S-32-alt"
    pretrained: str | None = None
    init_seed: int = 0
    image_size: int | None = None
    vision_overrides: dict[str, Any] = field(default_factory=dict)
    text_overrides: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    batch_size: int = 16
    top_k: int = 3
    same_modality: bool = True
    bank_path: str | None = None
    context_prefix: str = "closest reference findings"

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.top_k < 1:
            raise ValueError(f"batch_size={self.batch_size} and top_k={self.top_k} must be >= 1")
        if self.model_name.startswith("hf-hub:") and (self.vision_overrides or self.text_overrides or self.image_size):
            raise ValueError(
                f"{self.model_name}: overrides apply to built-in architectures only (its weights fix the shapes)"
            )

    @property
    def random_weights(self) -> bool:
        """True when the model is built without any weights (embeddings carry no meaning)."""
        return self.pretrained is None and not self.model_name.startswith("hf-hub:")


@dataclass(frozen=True)
class BankEntry:
    """One reference finding description.

    Attributes:
        id: stable id, e.g. ``"mr-meningioma"``.
        modality: ``xray`` | ``histopathology`` | ``mri`` | ``ultrasound``.
        polarity: ``normal`` | ``abnormal`` | ``artifact`` (e.g. "this is a segmentation mask").
        text: the description that is embedded and shown to the text model.
    """

    id: str
    modality: str
    polarity: str
    text: str


@dataclass(frozen=True)
class Match:
    """A bank entry ranked for one image.

    Attributes:
        entry: the description.
        score: cosine similarity in [-1, 1].
    """

    entry: BankEntry
    score: float


def load_finding_bank(path: str | Path | None = None) -> tuple[BankEntry, ...]:
    """Reads a finding bank (JSONL with ``id``, ``modality``, ``polarity``, ``text`` per line).

    Args:
        path: the file; ``None`` reads the packaged ``physio_ray/clinical/finding_bank.jsonl``.

    Returns:
        The entries in file order.

    Raises:
        ValueError: a line lacks a field, or ids repeat.
    """
    if path is None:
        text = resources.files("physio_ray.clinical").joinpath("finding_bank.jsonl").read_text()
        where = "finding_bank.jsonl"
    else:
        text, where = Path(path).read_text(), str(path)
    entries = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        missing = [f for f in _BANK_FIELDS if not row.get(f)]
        if missing:
            raise ValueError(f"{where}:{n} lacks {missing}")
        entries.append(BankEntry(*(str(row[f]) for f in _BANK_FIELDS)))
    ids = [e.id for e in entries]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{where}: bank ids repeat")
    return tuple(entries)


def render_context(matches: Sequence[Match], prefix: str = "closest reference findings") -> str:
    """The prompt text for one image's matches.

    >>> e = BankEntry("x", "mri", "normal", "normal brain MRI")
    >>> render_context([Match(e, 0.3127)])
    'closest reference findings (cosine): normal brain MRI (0.31)'
    """
    return f"{prefix} (cosine): " + "; ".join(f"{m.entry.text} ({m.score:.2f})" for m in matches)


class ImageFeaturizer:
    """open_clip image/text encoder + finding bank; usable directly or as a Ray Data ``map_batches`` class.

    Args:
        cfg: model and matching settings.

    Raises:
        ValueError: overrides given for an unknown architecture name.
        RuntimeError: open_clip cannot build the model (unknown name, weights not cached).
    """

    def __init__(self, cfg: VisionFeatureConfig | None = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import open_clip
        import torch
        from open_clip.transform import PreprocessCfg, image_transform_v2

        self.cfg = cfg = cfg or VisionFeatureConfig()
        self._torch = torch
        kwargs: dict[str, Any] = {}
        if cfg.vision_overrides or cfg.text_overrides:
            base = open_clip.get_model_config(cfg.model_name)
            if base is None:
                raise ValueError(f"no built-in open_clip config named {cfg.model_name!r} to apply overrides to")
            vision = {**base["vision_cfg"], **cfg.vision_overrides}
            if cfg.image_size is not None:
                vision["image_size"] = cfg.image_size
            kwargs = {"vision_cfg": vision, "text_cfg": {**base["text_cfg"], **cfg.text_overrides}}
        if cfg.random_weights:
            logger.warning("%s built with random weights: nearest finding descriptions are meaningless", cfg.model_name)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.init_seed)
            model = open_clip.create_model(
                cfg.model_name,
                pretrained=cfg.pretrained,
                device=cfg.device,
                force_image_size=cfg.image_size,
                **kwargs,
            )
        self.model = model.eval()
        self.preprocess = image_transform_v2(PreprocessCfg(**model.visual.preprocess_cfg), is_train=False)
        self.tokenizer = open_clip.get_tokenizer(cfg.model_name, context_length=getattr(model, "context_length", None))
        self.bank = load_finding_bank(cfg.bank_path)
        self.bank_embeddings = self.encode_texts([e.text for e in self.bank])
        self._bank_modality = np.array([e.modality for e in self.bank])

    @property
    def embed_dim(self) -> int:
        """Size of the joint embedding space."""
        return int(self.bank_embeddings.shape[1])

    def encode_images(self, images: Sequence[Any]) -> np.ndarray:
        """Embeds images.

        Args:
            images: PIL images (any mode; converted to RGB by the loader or here).

        Returns:
            ``[n, embed_dim]`` float32, rows L2-normalised.
        """
        torch = self._torch
        out = []
        for i in range(0, len(images), self.cfg.batch_size):
            chunk = [im if im.mode == "RGB" else im.convert("RGB") for im in images[i : i + self.cfg.batch_size]]
            x = torch.stack([self.preprocess(im) for im in chunk]).to(self.cfg.device)
            with torch.inference_mode():
                out.append(self.model.encode_image(x, normalize=True).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.embed_dim), np.float32)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Embeds texts with the model's tokenizer and text tower.

        Args:
            texts: strings.

        Returns:
            ``[m, embed_dim]`` float32, rows L2-normalised.
        """
        torch = self._torch
        out = []
        for i in range(0, len(texts), self.cfg.batch_size):
            tokens = self.tokenizer(list(texts[i : i + self.cfg.batch_size])).to(self.cfg.device)
            with torch.inference_mode():
                out.append(self.model.encode_text(tokens, normalize=True).float().cpu().numpy())
        return np.concatenate(out).astype(np.float32)

    def nearest(self, embeddings: np.ndarray, modalities: Sequence[str | None] | None = None) -> list[list[Match]]:
        """Ranks the bank for each image embedding by cosine similarity.

        Args:
            embeddings: ``[n, embed_dim]`` L2-normalised image embeddings.
            modalities: per image, restrict to this modality's entries (``None``: whole bank);
                ignored when ``cfg.same_modality`` is false.

        Returns:
            Per image, the ``cfg.top_k`` best :class:`Match` objects, best first.
        """
        sims = embeddings @ self.bank_embeddings.T  # [n, bank]
        out = []
        for row, sim in enumerate(sims):
            mod = modalities[row] if modalities is not None and self.cfg.same_modality else None
            allowed = self._bank_modality == mod if mod is not None and (self._bank_modality == mod).any() else None
            scores = np.where(allowed, sim, -np.inf) if allowed is not None else sim
            order = np.argsort(-scores, kind="stable")[: self.cfg.top_k]
            out.append([Match(self.bank[j], float(sim[j])) for j in order if np.isfinite(scores[j])])
        return out

    def describe(
        self, images: Sequence[Any], modalities: Sequence[str | None] | None = None
    ) -> tuple[np.ndarray, list[str], list[list[Match]]]:
        """Embeddings, rendered contexts and matches for a list of images.

        Returns:
            ``(embeddings [n, embed_dim], contexts, matches)``.
        """
        emb = self.encode_images(images)
        matches = self.nearest(emb, modalities)
        return emb, [render_context(m, self.cfg.context_prefix) for m in matches], matches

    def contexts_for_files(
        self, files: Mapping[str, str], modalities: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """``{name: context}`` for image files (e.g. ``{s.image_file: s.image_path}``) to feed
        :func:`~physio_ray.clinical.prompts.build_sft_records`.

        Raises:
            OSError: a file cannot be read.
        """
        names = list(files)
        images = [load_rgb(files[n]) for n in names]
        _, contexts, _ = self.describe(images, [(modalities or {}).get(n) for n in names])
        return dict(zip(names, contexts, strict=True))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Ray Data batch (numpy format) -> the same batch plus embedding/context columns.

        Args:
            batch: needs ``image_path`` ([n] str); optional ``modality`` ([n] str) and ``error``.

        Returns:
            The batch with ``image_embedding`` ([n] object of float32 [embed_dim]), ``finding_ids``
            ([n] object of lists), ``finding_scores`` ([n] object of float32 arrays),
            ``image_context`` ([n] str) and ``error`` ([n] object, str or None).
        """
        paths = [str(p) for p in batch[IMAGE_PATH]]
        n = len(paths)
        mods = [str(m) if m is not None else None for m in batch[MODALITY]] if MODALITY in batch else [None] * n
        given = list(batch[ERROR]) if ERROR in batch else [None] * n
        errors: list[str | None] = [e if isinstance(e, str) and e else None for e in given]
        ok_rows, images = [], []
        for i, p in enumerate(paths):
            if errors[i]:
                continue
            try:
                images.append(load_rgb(p))
                ok_rows.append(i)
            except Exception as exc:  # noqa: BLE001 - a bad row must not kill the batch
                errors[i] = f"image {p!r} unreadable: {type(exc).__name__}: {exc}"
        emb_col = np.empty(n, dtype=object)
        ids_col = np.empty(n, dtype=object)
        scores_col = np.empty(n, dtype=object)
        ctx_col = np.array([""] * n, dtype=object)
        for i in range(n):
            emb_col[i], ids_col[i], scores_col[i] = np.zeros(0, np.float32), [], np.zeros(0, np.float32)
        if images:
            emb, contexts, matches = self.describe(images, [mods[i] for i in ok_rows])
            for j, i in enumerate(ok_rows):
                emb_col[i] = emb[j]
                ids_col[i] = [m.entry.id for m in matches[j]]
                scores_col[i] = np.array([m.score for m in matches[j]], np.float32)
                ctx_col[i] = contexts[j]
        out = dict(batch)
        out.update(
            {
                IMAGE_EMBEDDING: emb_col,
                FINDING_IDS: ids_col,
                FINDING_SCORES: scores_col,
                IMAGE_CONTEXT: ctx_col,
                ERROR: np.array(errors, dtype=object),
            }
        )
        return out

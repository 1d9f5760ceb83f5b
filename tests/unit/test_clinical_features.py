"""Phase 1 features: a tiny open_clip model built from config (random weights, no download)
encodes the real clinical images and the finding bank; nearest descriptions become prompt context."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from physio_ray.clinical.data import load_clinical_dataset
from physio_ray.clinical.features import (
    FINDING_IDS,
    FINDING_SCORES,
    IMAGE_CONTEXT,
    IMAGE_EMBEDDING,
    IMAGE_PATH,
    MODALITY,
    ImageFeaturizer,
    VisionFeatureConfig,
    load_finding_bank,
)
from physio_ray.clinical.images import load_rgb
from physio_ray.clinical.prompts import build_sft_records
from physio_ray.clinical.records import ClinicalDataset
from physio_ray.schemas import ERROR
from tests.conftest import shared_path

# ViT-S-32-alt (open_clip built-in) shrunk to 2 layers per tower and 64 px input: a few seconds on CPU.
TINY = VisionFeatureConfig(
    model_name="ViT-S-32-alt",
    pretrained=None,
    init_seed=0,
    image_size=64,
    vision_overrides={"layers": 2},
    text_overrides={"layers": 2, "context_length": 32},
    top_k=3,
)


@pytest.fixture(scope="module")
def ds() -> ClinicalDataset:
    return load_clinical_dataset(shared_path("medbilldozer-clinical"))


@pytest.fixture(scope="module")
def featurizer() -> ImageFeaturizer:
    return ImageFeaturizer(TINY)


def test_bank_covers_every_modality() -> None:
    bank = load_finding_bank()
    assert 20 <= len(bank) <= 40
    mods = {e.modality for e in bank}
    assert mods == {"xray", "histopathology", "mri", "ultrasound"}
    assert all(sum(e.modality == m for e in bank) >= 5 for m in mods)
    assert {e.polarity for e in bank} == {"normal", "abnormal", "artifact"}


def test_model_is_built_from_config(featurizer: ImageFeaturizer) -> None:
    assert TINY.random_weights
    assert len(featurizer.model.visual.transformer.resblocks) == 2
    assert featurizer.model.visual.image_size == (64, 64)
    assert featurizer.embed_dim == 256  # ViT-S-32-alt's embed_dim
    assert featurizer.bank_embeddings.shape == (len(featurizer.bank), 256)


def test_real_images_are_encoded(featurizer: ImageFeaturizer, ds: ClinicalDataset) -> None:
    tm = ds.select("treatment_matching")
    images = [load_rgb(s.image_path) for s in tm]
    emb = featurizer.encode_images(images)
    assert emb.shape == (24, 256) and emb.dtype == np.float32
    assert np.all(np.isfinite(emb))
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert len({row.tobytes() for row in emb.round(5)}) == 24  # distinct pictures, distinct embeddings
    # cosine ranking equals a direct computation from encode_image / encode_text
    matches = featurizer.nearest(emb, [s.modality for s in tm])
    direct = featurizer.encode_texts([m[0].entry.text for m in matches])  # [24, 256], re-encoded
    for i, s in enumerate(tm):
        assert len(matches[i]) == 3
        assert {m.entry.modality for m in matches[i]} == {s.modality}
        scores = [m.score for m in matches[i]]
        assert scores == sorted(scores, reverse=True)
        assert float(emb[i] @ direct[i]) == pytest.approx(scores[0], abs=1e-5)
        same_mod = [j for j, e in enumerate(featurizer.bank) if e.modality == s.modality]
        assert scores[0] == pytest.approx(float(np.max(featurizer.bank_embeddings[same_mod] @ emb[i])), abs=1e-6)


def test_seeded_random_init_is_reproducible(featurizer: ImageFeaturizer, ds: ClinicalDataset) -> None:
    img = [load_rgb(ds.by_id()["clinical_019"].image_path)]  # a 1-bit mask, converted to RGB
    again = ImageFeaturizer(TINY)
    np.testing.assert_allclose(again.encode_images(img), featurizer.encode_images(img), atol=1e-6)
    other = ImageFeaturizer(VisionFeatureConfig(**{**TINY.__dict__, "init_seed": 1}))
    assert not np.allclose(other.encode_images(img), featurizer.encode_images(img), atol=1e-3)


def test_ray_batch_call_keeps_bad_rows_flowing(
    featurizer: ImageFeaturizer, ds: ClinicalDataset, tmp_path: Path
) -> None:
    tm = ds.select("treatment_matching")[:4]
    bad = tmp_path / "not_an_image.png"
    bad.write_text("nope")
    paths = [s.image_path for s in tm] + [str(bad), "/missing.png", tm[0].image_path]
    batch = {
        IMAGE_PATH: np.array(paths, dtype=object),
        MODALITY: np.array([s.modality for s in tm] + ["mri", "mri", "xray"], dtype=object),
        ERROR: np.array([None] * 6 + ["decode failed upstream"], dtype=object),
        "id": np.arange(7),
    }
    out = featurizer(batch)
    assert list(out["id"]) == list(range(7))
    errs = list(out[ERROR])
    assert errs[:4] == [None] * 4
    assert "unreadable" in errs[4] and "FileNotFoundError" in errs[5]
    assert errs[6] == "decode failed upstream"  # an earlier error is kept and the row skipped
    for i in range(4):
        assert out[IMAGE_EMBEDDING][i].shape == (256,)
        assert len(out[FINDING_IDS][i]) == 3 and out[FINDING_SCORES][i].shape == (3,)
        assert out[IMAGE_CONTEXT][i].startswith("closest reference findings (cosine): ")
    for i in (4, 5, 6):
        assert out[IMAGE_EMBEDDING][i].shape == (0,) and out[IMAGE_CONTEXT][i] == "" and out[FINDING_IDS][i] == []


def test_contexts_flow_into_sft_records(featurizer: ImageFeaturizer, ds: ClinicalDataset) -> None:
    tm = ds.select("treatment_matching", "ultrasound")
    contexts = featurizer.contexts_for_files(
        {s.image_file: s.image_path for s in tm}, {s.image_file: s.modality for s in tm}
    )
    recs = build_sft_records(tm, contexts)
    for r in recs:
        assert r["input"].startswith("Image features: closest reference findings (cosine): ")
        assert contexts[r["image_file"]] in r["input"]


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="top_k"):
        VisionFeatureConfig(top_k=0)
    with pytest.raises(ValueError, match="built-in"):
        VisionFeatureConfig(model_name="hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224", image_size=64)
    assert not VisionFeatureConfig(
        model_name="hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"
    ).random_weights

"""Prompt templates and SFT / GRPO records, checked against the upstream train/val files."""

from __future__ import annotations

import json

import pytest

from physio_ray.clinical.data import load_clinical_dataset
from physio_ray.clinical.parsing import parse_verdict
from physio_ray.clinical.prompts import (
    CANONICAL_TARGETS,
    ICD_INSTRUCTION,
    TREATMENT_INSTRUCTION,
    PromptConfig,
    build_prompt,
    build_sft_record,
    build_sft_records,
    prompt_text,
    target_text,
)
from physio_ray.clinical.records import ClinicalDataset
from physio_ray.clinical.reward import clinical_reward, make_grpo_reward
from tests.conftest import shared_path


@pytest.fixture(scope="module")
def ds() -> ClinicalDataset:
    return load_clinical_dataset(shared_path("medbilldozer-clinical"))


def test_upstream_template_reproduces_train_and_val_rows(ds: ClinicalDataset) -> None:
    by_key = {s.key: s for s in ds.scenarios}
    cfg = PromptConfig(template="upstream", target="dataset")
    assert len(ds.upstream) == 24
    for row in ds.upstream:
        instruction, text = build_prompt(by_key[row.key], cfg=cfg)
        assert instruction == row.instruction
        assert text == row.input
        assert build_sft_record(by_key[row.key], cfg=cfg)["output"] == row.output


def test_seed_template(ds: ClinicalDataset) -> None:
    s = ds.by_id()["clinical_013"]
    instruction, text = build_prompt(s)
    assert instruction == TREATMENT_INSTRUCTION
    assert text == (
        "Clinical Finding: No mass lesion, no abnormal enhancement, normal brain parenchyma\n"
        "Treatment: Craniotomy for tumor resection\n"
    )
    _, with_ctx = build_prompt(s, image_context="closest reference findings (cosine): normal brain MRI (0.31)")
    assert with_ctx.startswith(
        "Image features: closest reference findings (cosine): normal brain MRI (0.31)\nClinical Finding:"
    )
    _, with_patient = build_prompt(s, cfg=PromptConfig(include_patient=True))
    assert with_patient.startswith("Patient: 42-year-old female; complaint: Headaches\nClinical Finding:")


def test_icd_prompts(ds: ClinicalDataset) -> None:
    s = ds.by_id()["icd_013"]
    instruction, text = build_prompt(s)
    assert instruction == ICD_INSTRUCTION
    assert (
        "Diagnosis: Normal brain MRI, primary headache\nICD-10 code: C71.9 (Malignant neoplasm of brain, unspecified)\n"
        in text
    )
    _, up = build_prompt(s, cfg=PromptConfig(template="upstream"))
    assert "**ICD-10 Code:**\nC71.9" in up and "**Prescribed Treatment:**" not in up
    # The instruction's two answer lines parse to the two verdicts.
    answers = [line.strip('- "').split('" if')[0] for line in ICD_INSTRUCTION.splitlines() if line.startswith("- ")]
    assert [parse_verdict(a) for a in answers] == ["ERROR", "CORRECT"]


def test_records_are_chat_and_instruction_shaped(ds: ClinicalDataset) -> None:
    ctx = {"mri_negative.jpg": "closest reference findings (cosine): normal brain MRI (0.31)"}
    recs = build_sft_records(ds.scenarios, ctx)
    assert len(recs) == 48
    r = next(x for x in recs if x["id"] == "clinical_013")
    assert [m["role"] for m in r["prompt"]] == ["system", "user"]
    assert r["completion"] == [{"role": "assistant", "content": "ERROR - Treatment does not match imaging"}]
    assert r["input"].startswith("Image features: ")
    assert (r["label"], r["modality"], r["severity"], r["image_file"]) == (
        "ERROR",
        "mri",
        "critical",
        "mri_negative.jpg",
    )
    assert json.loads(r["scenario"])["id"] == "clinical_013"
    no_ctx = next(x for x in recs if x["id"] == "clinical_001")
    assert not no_ctx["input"].startswith("Image features")
    for x in recs:  # every gold output parses to the label and earns the top reward of its case
        assert parse_verdict(x["output"]) == x["label"]
        assert clinical_reward(x["output"], json.loads(x["scenario"])) > 0


def test_records_feed_the_grpo_reward(ds: ClinicalDataset) -> None:
    recs = build_sft_records(ds.select("treatment_matching"))
    fn = make_grpo_reward()
    rewards = fn(completions=[r["completion"] for r in recs], scenario=[r["scenario"] for r in recs])
    assert sum(rewards) == pytest.approx(49.5)


def test_no_system_role_and_raw_dicts(ds: ClinicalDataset) -> None:
    raw = ds.by_id()["clinical_001"].to_dict()
    r = build_sft_record(raw, cfg=PromptConfig(system_role=False))
    assert [m["role"] for m in r["prompt"]] == ["user"]
    assert r["prompt"][0]["content"] == prompt_text(r["instruction"], r["input"])
    with pytest.raises(ValueError, match="template"):
        PromptConfig(template="other")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="target"):
        PromptConfig(target="other")  # type: ignore[arg-type]


def test_targets(ds: ClinicalDataset) -> None:
    s = ds.by_id()["clinical_013"]
    assert s.expected_determination == "ERROR - Surgery not indicated by imaging"
    assert target_text(s) == "ERROR - Treatment does not match imaging"
    assert target_text(s, PromptConfig(target="dataset")) == s.expected_determination
    canonical = {target_text(x) for x in ds.scenarios}
    assert canonical == set(CANONICAL_TARGETS.values())
    # every canonical line is one of the instruction's allowed answers
    for (vt, _), line in CANONICAL_TARGETS.items():
        assert f'"{line}"' in (TREATMENT_INSTRUCTION if vt == "treatment_matching" else ICD_INSTRUCTION)

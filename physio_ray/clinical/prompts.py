"""Prompts and SFT / GRPO records for the ERROR / CORRECT clinical-validation task.

Two input templates:

* ``seed`` (default): seed 002's LoRA data format,
  ``"[IMAGE_FEATURES] Clinical Finding: {finding}\\nTreatment: {treatment}\\n"``, where the
  ``[IMAGE_FEATURES]`` slot becomes ``"Image features: <context>\\n"`` when an image context
  (:mod:`physio_ray.clinical.features`) is given and is dropped otherwise;
* ``upstream``: the markdown layout of the upstream ``train.jsonl`` (patient block, finding,
  treatment, ``**Your Assessment:**``), reproduced byte for byte.

The instruction is the upstream project's ("Respond with ONLY: - \\"ERROR - Treatment does not
match imaging\\" ..."), with an ICD-coding twin written here in the same shape. The target is
the instruction's own answer line for the gold verdict (or, with ``target="dataset"``, the
scenario's ``expected_determination`` as written); both parse back to the gold verdict.

Example:
    >>> s = {"id": "x", "validation_type": "treatment_matching", "modality": "mri", "image_type": "negative",
    ...      "image_file": "mri_negative.jpg", "clinical_finding": "No mass lesion",
    ...      "prescribed_treatment": "Craniotomy", "expected_determination": "ERROR - Treatment does not match imaging",
    ...      "error_type": "unnecessary_procedure", "severity": "critical"}
    >>> print(build_prompt(s)[1])
    Clinical Finding: No mass lesion
    Treatment: Craniotomy
    <BLANKLINE>
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from physio_ray.clinical.data import parse_scenario
from physio_ray.clinical.records import Scenario

__all__ = [
    "CANONICAL_TARGETS",
    "ICD_INSTRUCTION",
    "SEED_ICD_TEMPLATE",
    "SEED_TREATMENT_TEMPLATE",
    "TREATMENT_INSTRUCTION",
    "PromptConfig",
    "build_prompt",
    "build_sft_record",
    "build_sft_records",
    "prompt_text",
    "target_text",
]

TREATMENT_INSTRUCTION = (
    "You are a medical AI assistant trained to detect clinical errors. \n"
    "Review the medical image and clinical information to determine if the prescribed treatment is appropriate.\n\n"
    "Respond with ONLY:\n"
    '- "ERROR - Treatment does not match imaging" if inappropriate\n'
    '- "CORRECT - Treatment matches imaging findings" if appropriate'
)
ICD_INSTRUCTION = (
    "You are a medical AI assistant trained to detect clinical errors. \n"
    "Review the medical image and clinical information to determine if the ICD-10 code matches the diagnosis.\n\n"
    "Respond with ONLY:\n"
    '- "ERROR - ICD code does not match diagnosis" if it does not match\n'
    '- "CORRECT - ICD code matches diagnosis" if it matches'
)
# The answer lines each instruction allows, by validation type and verdict.
CANONICAL_TARGETS = {
    ("treatment_matching", "ERROR"): "ERROR - Treatment does not match imaging",
    ("treatment_matching", "CORRECT"): "CORRECT - Treatment matches imaging findings",
    ("icd_coding", "ERROR"): "ERROR - ICD code does not match diagnosis",
    ("icd_coding", "CORRECT"): "CORRECT - ICD code matches diagnosis",
}
# Seed 002, Phase 2 "data_format.input"; "[IMAGE_FEATURES] " is the {image_features} slot.
SEED_TREATMENT_TEMPLATE = "{image_features}Clinical Finding: {finding}\nTreatment: {treatment}\n"
SEED_ICD_TEMPLATE = (
    "{image_features}Clinical Finding: {finding}\nDiagnosis: {diagnosis}\nICD-10 code: {icd_code} ({icd_description})\n"
)


@dataclass(frozen=True)
class PromptConfig:
    """How scenarios become prompts.

    Attributes:
        template: ``seed`` (seed 002's data format) or ``upstream`` (the train.jsonl layout).
        include_patient: add a patient line to the ``seed`` template (the upstream layout always has one).
        system_role: put the instruction in a system message; ``False`` prepends it to the user
            message (for chat templates without a system role, e.g. Gemma).
        target: ``canonical``: the instruction's own answer line for the gold verdict
            (``"ERROR - Treatment does not match imaging"``); ``dataset``: the scenario's
            ``expected_determination`` as written (14 wordings for treatment matching, e.g.
            ``"ERROR - Surgery not indicated by imaging"``, which the instruction does not allow).
    """

    template: Literal["seed", "upstream"] = "seed"
    include_patient: bool = False
    system_role: bool = True
    target: Literal["canonical", "dataset"] = "canonical"

    def __post_init__(self) -> None:
        if self.template not in ("seed", "upstream"):
            raise ValueError(f"prompt.template={self.template!r} must be 'seed' or 'upstream'")
        if self.target not in ("canonical", "dataset"):
            raise ValueError(f"prompt.target={self.target!r} must be 'canonical' or 'dataset'")


def _as_scenario(scenario: Scenario | Mapping[str, Any]) -> Scenario:
    return scenario if isinstance(scenario, Scenario) else parse_scenario(scenario)


def _patient_line(s: Scenario) -> str:
    p = s.patient
    bits = [f"{p.age}-year-old {p.gender.lower()}" if p.age is not None and p.gender else (p.gender or "")]
    if p.chief_complaint:
        bits.append(f"complaint: {p.chief_complaint}")
    if p.vital_signs:
        bits.append(f"vitals: {p.vital_signs}")
    return "Patient: " + "; ".join(b for b in bits if b) + "\n"


def _upstream_input(s: Scenario, image_context: str | None) -> str:
    p = s.patient
    parts = [
        f"**Patient Information:**\n- Age: {p.age}\n- Gender: {p.gender}\n- Complaint: {p.chief_complaint}\n\n",
    ]
    if image_context:
        parts.append(f"**Image Features:**\n{image_context}\n\n")
    parts.append(f"**Clinical Finding:**\n{s.clinical_finding}\n\n")
    if s.validation_type == "icd_coding":
        parts.append(f"**Diagnosis:**\n{s.diagnosis}\n\n**ICD-10 Code:**\n{s.icd_code} ({s.icd_description})\n\n")
    else:
        parts.append(f"**Prescribed Treatment:**\n{s.prescribed_treatment}\n\n")
    parts.append("**Your Assessment:**")
    return "".join(parts)


def build_prompt(
    scenario: Scenario | Mapping[str, Any], image_context: str | None = None, cfg: PromptConfig | None = None
) -> tuple[str, str]:
    """The instruction and the input text for one scenario.

    Args:
        scenario: a :class:`~physio_ray.clinical.records.Scenario` or a raw scenario dict.
        image_context: text describing the image (e.g. nearest finding descriptions); ``None``: none.
        cfg: template settings.

    Returns:
        ``(instruction, input)``.

    Raises:
        ValueError: a raw dict that is not a valid scenario.
    """
    cfg = cfg or PromptConfig()
    s = _as_scenario(scenario)
    instruction = ICD_INSTRUCTION if s.validation_type == "icd_coding" else TREATMENT_INSTRUCTION
    if cfg.template == "upstream":
        return instruction, _upstream_input(s, image_context)
    features = f"Image features: {image_context}\n" if image_context else ""
    if cfg.include_patient:
        features = _patient_line(s) + features
    if s.validation_type == "icd_coding":
        text = SEED_ICD_TEMPLATE.format(
            image_features=features,
            finding=s.clinical_finding,
            diagnosis=s.diagnosis,
            icd_code=s.icd_code,
            icd_description=s.icd_description,
        )
    else:
        text = SEED_TREATMENT_TEMPLATE.format(
            image_features=features, finding=s.clinical_finding, treatment=s.prescribed_treatment
        )
    return instruction, text


def target_text(scenario: Scenario | Mapping[str, Any], cfg: PromptConfig | None = None) -> str:
    """The answer a model should learn to give (see ``PromptConfig.target``).

    >>> target_text({"id": "x", "validation_type": "treatment_matching", "modality": "mri", "image_type": "negative",
    ...   "image_file": "a.jpg", "clinical_finding": "f", "error_type": "overtreatment", "severity": "high",
    ...   "expected_determination": "ERROR - Surgery not indicated by imaging"})
    'ERROR - Treatment does not match imaging'
    """
    cfg = cfg or PromptConfig()
    s = _as_scenario(scenario)
    if cfg.target == "dataset":
        return s.expected_determination
    return CANONICAL_TARGETS[(s.validation_type, s.label)]


def prompt_text(instruction: str, input_text: str) -> str:
    """Instruction and input as one plain-text prompt (for engines without a chat template)."""
    return f"{instruction}\n\n{input_text}"


def build_sft_record(
    scenario: Scenario | Mapping[str, Any], image_context: str | None = None, cfg: PromptConfig | None = None
) -> dict[str, Any]:
    """One training record, usable by TRL's SFT (prompt/completion) and GRPO (prompt + reward columns).

    Args:
        scenario: a :class:`~physio_ray.clinical.records.Scenario` or a raw scenario dict.
        image_context: image description for the ``[IMAGE_FEATURES]`` slot.
        cfg: template settings.

    Returns:
        A dict with ``id``; chat fields ``prompt`` (system + user messages) and ``completion``
        (assistant message); instruction fields ``instruction``, ``input``, ``output``;
        ``scenario`` (the raw scenario as JSON, read by
        :func:`~physio_ray.clinical.reward.make_grpo_reward`); and ``label``, ``validation_type``,
        ``modality``, ``image_type``, ``image_file``, ``severity``.
    """
    cfg = cfg or PromptConfig()
    s = _as_scenario(scenario)
    instruction, text = build_prompt(s, image_context, cfg)
    if cfg.system_role:
        prompt = [{"role": "system", "content": instruction}, {"role": "user", "content": text}]
    else:
        prompt = [{"role": "user", "content": prompt_text(instruction, text)}]
    raw = s.to_dict() or {"id": s.id}
    target = target_text(s, cfg)
    return {
        "id": s.id,
        "prompt": prompt,
        "completion": [{"role": "assistant", "content": target}],
        "instruction": instruction,
        "input": text,
        "output": target,
        "scenario": json.dumps(raw, sort_keys=True),
        "label": s.label,
        "validation_type": s.validation_type,
        "modality": s.modality,
        "image_type": s.image_type,
        "image_file": s.image_file,
        "severity": s.severity,
    }


def build_sft_records(
    scenarios: Sequence[Scenario | Mapping[str, Any]],
    image_contexts: Mapping[str, str] | None = None,
    cfg: PromptConfig | None = None,
) -> list[dict[str, Any]]:
    """Records for many scenarios (see :func:`build_sft_record`).

    Args:
        scenarios: scenarios, typed or raw.
        image_contexts: ``{image_file: context}``; images without an entry get no context.
        cfg: template settings.

    Returns:
        One record per scenario, in order.
    """
    contexts = image_contexts or {}
    out = []
    for sc in scenarios:
        s = _as_scenario(sc)
        out.append(build_sft_record(s, contexts.get(s.image_file), cfg))
    return out

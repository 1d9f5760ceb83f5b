"""Seed 002's severity-weighted clinical reward, with strict verdict parsing.

The seed (``docs/MEDGEMMA_VISION_ENHANCEMENT.md``, Phase 3) defines, for a scenario whose
``error_type`` is not ``"none"`` (an error case; truth ERROR):

* caught (model says ERROR): ``base_reward + severity_bonus`` with ``base_reward = 1.0`` (the
  prediction equals the truth) and bonus critical 2.0 / high 1.5 / moderate 1.0, i.e.
  **critical 3.0, high 2.5, moderate 2.0**;
* missed (anything else): **critical -3.0, high -2.0, moderate -1.5**;

and for a scenario with ``error_type == "none"`` (truth CORRECT):

* correct validation (model says CORRECT): ``base_reward + 0.5`` = **1.5**;
* false alarm (anything else): **-2.0**.

What the seed implies for unparseable output, and what we do instead: its substring tests put
every output without "ERROR" in the *missed* branch and every output without "CORRECT" in the
*false-alarm* branch, while ``"INCORRECT"`` counts as CORRECT and ``"ERROR or CORRECT"`` collects
the caught bonus. Read literally, a hedge beats a commitment. Here the verdict is parsed strictly
(:func:`physio_ray.clinical.parsing.parse_verdict`) and an unparseable output gets the table's
minimum (-3.0 by default, the missed-critical penalty), so no evasive output ever scores above
any committed answer. The seed's "hard constraint: never miss critical errors" is a metric
(:mod:`physio_ray.clinical.metrics`), not a reward term; its cost-impact weighting is not part
of the seed's formula and is left out.

Example:
    >>> s = {"error_type": "overtreatment", "severity": "critical",
    ...      "expected_determination": "ERROR - Treatment does not match imaging"}
    >>> clinical_reward("ERROR - Treatment does not match imaging", s)
    3.0
    >>> clinical_reward("CORRECT", s)
    -3.0
    >>> clinical_reward("INCORRECT", {"error_type": "none", "severity": "none"})
    -3.0
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from physio_ray.clinical.parsing import VERDICT_CORRECT, VERDICT_ERROR, Verdict, parse_determination, parse_verdict

__all__ = [
    "SEVERITIES",
    "Outcome",
    "RewardOutcome",
    "RewardTable",
    "clinical_reward",
    "make_grpo_reward",
    "reward_outcome",
    "scenario_truth",
]

SEVERITIES = ("critical", "high", "moderate")
Outcome = Literal["caught", "missed", "correct_validation", "false_alarm", "unparseable"]


@dataclass(frozen=True)
class RewardTable:
    """Reward values (defaults: seed 002 Phase 3, see the module docstring).

    Attributes:
        caught_critical: ERROR said on a critical error case (1.0 + 2.0).
        caught_high: ERROR said on a high-severity error case (1.0 + 1.5).
        caught_moderate: ERROR said on a moderate error case (1.0 + 1.0).
        missed_critical: CORRECT said on a critical error case.
        missed_high: CORRECT said on a high-severity error case.
        missed_moderate: CORRECT said on a moderate error case.
        correct_validation: CORRECT said on a correct-treatment case (1.0 + 0.5).
        false_alarm: ERROR said on a correct-treatment case.
        unparseable: no single verdict could be read; must not exceed any other value.
    """

    caught_critical: float = 3.0
    caught_high: float = 2.5
    caught_moderate: float = 2.0
    missed_critical: float = -3.0
    missed_high: float = -2.0
    missed_moderate: float = -1.5
    correct_validation: float = 1.5
    false_alarm: float = -2.0
    unparseable: float = -3.0

    def __post_init__(self) -> None:
        others = [v for k, v in self.__dict__.items() if k != "unparseable"]
        if self.unparseable > min(others):
            raise ValueError(
                f"reward.unparseable={self.unparseable} exceeds the smallest committed reward {min(others)}; "
                f"an evasive output would then beat a wrong answer (reward hacking). Use <= {min(others)}"
            )

    @property
    def minimum(self) -> float:
        """The smallest value in the table."""
        return min(self.__dict__.values())

    @property
    def maximum(self) -> float:
        """The largest value in the table."""
        return max(self.__dict__.values())


@dataclass(frozen=True)
class RewardOutcome:
    """How one prediction was scored.

    Attributes:
        outcome: ``caught`` | ``missed`` | ``correct_validation`` | ``false_alarm`` | ``unparseable``.
        reward: the value from the :class:`RewardTable`.
        predicted: the parsed verdict (``None`` when unparseable).
        truth: the scenario's verdict.
        severity: the scenario's severity (``"none"`` for correct cases).
    """

    outcome: Outcome
    reward: float
    predicted: Verdict | None
    truth: Verdict
    severity: str


def scenario_truth(scenario: Mapping[str, Any]) -> tuple[Verdict, str]:
    """The gold verdict and severity of a scenario, as the seed defines them.

    The seed decides by ``error_type`` (``"none"``: CORRECT, anything else: ERROR). When the
    scenario also has ``expected_determination``, both must agree.

    Args:
        scenario: a dict as in ``clinical_scenarios_48.json`` (needs ``error_type``;
            ``severity`` for error cases).

    Returns:
        ``(verdict, severity)``; severity is ``"none"`` for correct cases.

    Raises:
        ValueError: missing ``error_type``, an error case whose severity is not one of
            critical / high / moderate, or ``error_type`` disagreeing with ``expected_determination``.
    """
    error_type = scenario.get("error_type")
    if not isinstance(error_type, str) or not error_type:
        raise ValueError(f"scenario {scenario.get('id')!r} has no error_type (seed 002 decides truth by it)")
    truth: Verdict = VERDICT_CORRECT if error_type == "none" else VERDICT_ERROR
    expected = scenario.get("expected_determination")
    if expected is not None and parse_determination(expected) != truth:
        raise ValueError(
            f"scenario {scenario.get('id')!r}: error_type={error_type!r} says {truth} but "
            f"expected_determination={expected!r}; fix the scenario file"
        )
    if truth == VERDICT_CORRECT:
        return truth, "none"
    severity = scenario.get("severity")
    if severity not in SEVERITIES:
        raise ValueError(
            f"scenario {scenario.get('id')!r} is an error case with severity={severity!r}; "
            f"seed 002 defines rewards for {list(SEVERITIES)}"
        )
    return truth, str(severity)


def reward_outcome(prediction: str, scenario: Mapping[str, Any], table: RewardTable | None = None) -> RewardOutcome:
    """Scores one model output against one scenario and says which case applied.

    Args:
        prediction: raw model output.
        scenario: a scenario dict (see :func:`scenario_truth`).
        table: reward values (default: the seed's).

    Returns:
        The :class:`RewardOutcome`.

    Raises:
        ValueError: when the scenario is malformed (see :func:`scenario_truth`).
    """
    table = table or RewardTable()
    truth, severity = scenario_truth(scenario)
    predicted = parse_verdict(prediction)
    if predicted is None:
        return RewardOutcome("unparseable", table.unparseable, None, truth, severity)
    if truth == VERDICT_ERROR:
        if predicted == VERDICT_ERROR:
            return RewardOutcome("caught", getattr(table, f"caught_{severity}"), predicted, truth, severity)
        return RewardOutcome("missed", getattr(table, f"missed_{severity}"), predicted, truth, severity)
    if predicted == VERDICT_CORRECT:
        return RewardOutcome("correct_validation", table.correct_validation, predicted, truth, severity)
    return RewardOutcome("false_alarm", table.false_alarm, predicted, truth, severity)


def clinical_reward(prediction: str, scenario: dict, table: RewardTable | None = None) -> float:
    """Seed 002's reward for one output (see the module docstring for the table).

    Args:
        prediction: raw model output, e.g. ``"ERROR - Treatment does not match imaging"``.
        scenario: one entry of ``clinical_scenarios_48.json`` (``error_type``, ``severity``,
            optionally ``expected_determination``).
        table: reward values (default: the seed's).

    Returns:
        The reward: caught critical 3.0 / high 2.5 / moderate 2.0, missed critical -3.0 /
        high -2.0 / moderate -1.5, correct validation 1.5, false alarm -2.0, unparseable -3.0.

    Raises:
        ValueError: when the scenario is malformed (see :func:`scenario_truth`).
    """
    return reward_outcome(prediction, scenario, table).reward


def _completion_text(completion: Any) -> str:
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence) and completion and isinstance(completion[-1], Mapping):
        return str(completion[-1].get("content", ""))
    return ""


def make_grpo_reward(table: RewardTable | None = None) -> Any:
    """A reward function in TRL's ``GRPOTrainer`` form, reading the ``scenario`` column.

    The records from :func:`physio_ray.clinical.prompts.build_sft_record` carry the scenario as
    a JSON string in ``scenario``; TRL passes dataset columns to reward functions as keyword
    lists aligned with ``completions``.

    Args:
        table: reward values (default: the seed's).

    Returns:
        ``fn(completions, scenario, **kwargs) -> list[float]``; completions may be strings or
        conversational message lists (the last message's ``content`` is scored).
    """
    table = table or RewardTable()

    def clinical_reward_fn(completions: Sequence[Any], scenario: Sequence[Any], **_: Any) -> list[float]:
        if len(completions) != len(scenario):
            raise ValueError(f"{len(completions)} completions but {len(scenario)} scenarios")
        out = []
        for completion, raw in zip(completions, scenario, strict=True):
            sc = json.loads(raw) if isinstance(raw, str) else raw
            out.append(clinical_reward(_completion_text(completion), sc, table))
        return out

    clinical_reward_fn.__name__ = "clinical_reward"
    return clinical_reward_fn

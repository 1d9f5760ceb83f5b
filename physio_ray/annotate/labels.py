"""Pure label rules of the hybrid annotation: measurement, then the judge where confident, Monte-Carlo elsewhere.

Vocabulary (one solution of ``S`` steps):

* judge label / confidence: the RAG judge's verdict per step (``None`` = abstained).
* MC soft label: the fraction of sampled continuations from a step's prefix that reach the
  known answer; MC hard label = 1 iff soft > 0 (Med-PRM / VisualPRM rule: one correct
  continuation is enough to call the prefix "still on a path to the answer").
* MC source per step: ``"mc"`` (rollouts were sampled from this prefix), ``"mc_reuse"``
  (a correct rollout from a *later* prefix of the same solution is also a correct
  continuation of this one; OmegaPRM), ``"solution"`` (the solution itself reached the
  answer, so it is a correct continuation of every one of its prefixes).
* measurement verdict per step (:mod:`physio_ray.annotate.measurement`): ``"supported"``,
  ``"contradicted"`` or ``"not_checkable"`` (``None``: no check ran). A contradicted claim makes
  the step 0 whatever the judge said; a supported one confirms a judge 1 (or an abstention) at
  any confidence; a supported step the judge called 0 is a conflict and goes to Monte-Carlo.
  Steps the measurement decided get method ``"measurement"``.

The rollout schedule (which prefixes to sample next, when a step is settled) is in
:mod:`physio_ray.annotate.rollouts`.

Example:
    >>> combine_labels([1, 0, 1], [0.9, 0.5, 0.2], [None, 0.25, None], 0.7,
    ...                mc_sources=[None, "mc", "mc_reuse"])
    ([1, 1, 1], [1.0, 0.25, 1.0], ['rag', 'mc_0.25', 'mc_reuse'])
    >>> combine_labels([1, 1], [0.9, 0.3], [None, None], 0.7, measurement=["contradicted", "supported"])
    ([0, 1], [0.0, 1.0], ['measurement', 'measurement'])
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = [
    "MC_SOURCES",
    "MEASUREMENT_METHOD",
    "combine_labels",
    "mc_hard_label",
    "needs_mc",
    "reuse_closure",
]

MC_SOURCES = ("mc", "mc_reuse", "solution")
MEASUREMENT_METHOD = "measurement"  # annotation_method of a step the measurement check decided
_SUPPORTED, _CONTRADICTED = "supported", "contradicted"  # measurement.SUPPORTED / CONTRADICTED


def _measured_label(judge_label: int | None, verdict: str | None) -> int | None:
    """The label the measurement fixes for a step (``None``: it does not decide the step)."""
    if verdict == _CONTRADICTED:
        return 0
    if verdict == _SUPPORTED and judge_label != 0:
        return 1
    return None


def mc_hard_label(soft: float) -> int:
    """Hard label of a Monte-Carlo estimate: 1 iff at least one rollout was correct.

    Args:
        soft: fraction of correct rollouts, in ``[0, 1]``.

    Returns:
        1 when ``soft > 0`` else 0.

    Raises:
        ValueError: when ``soft`` is NaN or outside ``[0, 1]``.

    >>> mc_hard_label(0.0625), mc_hard_label(0.0)
    (1, 0)
    """
    soft = float(soft)
    if math.isnan(soft) or not 0.0 <= soft <= 1.0:
        raise ValueError(f"MC soft label {soft!r} must be a fraction in [0, 1]")
    return 1 if soft > 0.0 else 0


def needs_mc(
    judge_labels: Sequence[int | None],
    judge_conf: Sequence[float],
    threshold: float,
    measurement: Sequence[str | None] | None = None,
) -> list[bool]:
    """Which steps go to Monte-Carlo.

    Without ``measurement``: confidence below ``threshold``, or the judge abstained. With it, a
    step the measurement decides (contradicted; supported and not called 0 by the judge) needs
    no MC, and a supported step the judge called 0 (a conflict) always goes to MC.

    Args:
        judge_labels: ``[S]`` judge labels (1, 0 or ``None`` for an abstention).
        judge_conf: ``[S]`` judge confidences in ``[0, 1]``.
        threshold: confidence below which a step is sent to MC.
        measurement: optional ``[S]`` measurement verdicts (``None`` entries: not checked).

    Returns:
        ``[S]`` booleans.

    Raises:
        ValueError: when the sequences differ in length.

    >>> needs_mc([1, 0, None], [0.7, 0.69, 0.95], 0.7)
    [False, True, True]
    >>> needs_mc([1, 0, 1, 0], [0.2, 0.95, 0.9, 0.2], 0.7, ["supported", "supported", "contradicted", None])
    [False, True, False, True]
    """
    if len(judge_labels) != len(judge_conf):
        raise ValueError(f"judge_labels has {len(judge_labels)} steps but judge_confidences has {len(judge_conf)}")
    if measurement is not None and len(measurement) != len(judge_labels):
        raise ValueError(f"judge_labels has {len(judge_labels)} steps but measurement has {len(measurement)}")
    out = []
    for k, (lab, c) in enumerate(zip(judge_labels, judge_conf, strict=True)):
        verdict = None if measurement is None else measurement[k]
        if _measured_label(lab, verdict) is not None:
            out.append(False)
        elif verdict == _SUPPORTED:  # the judge said 0: a conflict
            out.append(True)
        else:
            out.append(lab is None or float(c) < threshold)
    return out


def combine_labels(
    judge_labels: Sequence[int | None],
    judge_conf: Sequence[float],
    mc_scores: Sequence[float | None],
    threshold: float,
    *,
    mc_sources: Sequence[str | None] | None = None,
    measurement: Sequence[str | None] | None = None,
) -> tuple[list[int], list[float], list[str]]:
    """Hybrid labels: the measurement's where it decides, the judge's where it is confident, MC's elsewhere.

    A step the measurement decides (see :func:`needs_mc`) gets its label (0 contradicted, 1
    supported), soft label the same as a float, method ``"measurement"``.

    A step with confidence ``>= threshold`` and a label keeps the judge label (soft label =
    that label as a float, method ``"rag"``), even when an MC score exists for it. Every other
    step needs an MC result: a score (method ``f"mc_{score:.2f}"``, hard = ``soft > 0``) or,
    via ``mc_sources``, ``"mc_reuse"`` / ``"solution"`` (hard 1, soft 1.0: the evidence is a
    witnessed correct continuation, not a rate estimate).

    Args:
        judge_labels: ``[S]`` judge labels (1, 0, or ``None``).
        judge_conf: ``[S]`` judge confidences.
        mc_scores: ``[S]`` MC soft labels, ``None`` where no rollouts were scored.
        threshold: the confidence threshold of :func:`needs_mc`.
        mc_sources: optional ``[S]`` sources from :data:`MC_SOURCES` (or ``None``); when
            absent, a step with a score counts as ``"mc"``.
        measurement: optional ``[S]`` measurement verdicts (``None`` entries: not checked).

    Returns:
        ``(labels, soft_labels, methods)``, each of length ``S``.

    Raises:
        ValueError: on length mismatches, an unknown source, or a step that needs MC but has
            no result.
    """
    n = len(judge_labels)
    if len(mc_scores) != n or (mc_sources is not None and len(mc_sources) != n):
        raise ValueError(
            f"length mismatch: {n} judge labels, {len(mc_scores)} MC scores"
            + ("" if mc_sources is None else f", {len(mc_sources)} MC sources")
        )
    send = needs_mc(judge_labels, judge_conf, threshold, measurement)
    labels: list[int] = []
    soft: list[float] = []
    methods: list[str] = []
    for i in range(n):
        score = mc_scores[i]
        source = mc_sources[i] if mc_sources is not None else None
        if source is None and score is not None:
            source = "mc"
        measured = None if measurement is None else _measured_label(judge_labels[i], measurement[i])
        if measured is not None:
            labels.append(measured)
            soft.append(float(measured))
            methods.append(MEASUREMENT_METHOD)
        elif not send[i]:
            lab = int(judge_labels[i])  # type: ignore[arg-type]  # not None: needs_mc said so
            labels.append(lab)
            soft.append(float(lab))
            methods.append("rag")
        elif source == "mc":
            if score is None:
                raise ValueError(f"step {i} has MC source 'mc' but no MC score")
            labels.append(mc_hard_label(score))
            soft.append(float(score))
            methods.append(f"mc_{float(score):.2f}")
        elif source in ("mc_reuse", "solution"):
            labels.append(1)
            soft.append(1.0)
            methods.append(source)
        elif source is None:
            raise ValueError(
                f"step {i} needs Monte-Carlo (confidence {float(judge_conf[i]):.3f} < {threshold} "
                f"or judge abstained) but has no MC score or source"
            )
        else:
            raise ValueError(f"step {i} has unknown MC source {source!r}; expected one of {MC_SOURCES}")
    return labels, soft, methods


def reuse_closure(hard: Sequence[int]) -> list[int]:
    """The hard labels implied by rollout reuse: a step is 1 if it or any later step is 1.

    A correct continuation of prefix ``k`` is also a correct continuation of every shorter
    prefix of the same solution (the steps in between are one sample of the policy), so an
    MC hard label of 1 at step ``k`` proves 1 at every step ``<= k``. A 16-rollout estimate
    of 0 before a 1 (a 0 -> 1 pattern) is therefore a sampling false negative.

    Args:
        hard: ``[S]`` MC hard labels.

    Returns:
        ``[S]`` suffix maxima of ``hard``.

    >>> reuse_closure([1, 0, 1, 0, 0])
    [1, 1, 1, 0, 0]
    """
    out = [int(h) for h in hard]
    for i in range(len(out) - 2, -1, -1):
        out[i] = max(out[i], out[i + 1])
    return out

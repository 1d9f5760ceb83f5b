"""The short text summary the annotate jobs print at the end of a run."""

from __future__ import annotations

from typing import Any


def render_summary(summary: dict[str, Any]) -> str:
    """Renders the run summary (see :func:`physio_ray.annotate.finalize.finalize`).

    Args:
        summary: the dict written to ``summary.json``.

    Returns:
        A few lines: rows per stage, errors, step labels by judge vs MC, agreement, cost and
        where every output went.
    """
    lines = ["", "== physio_ray annotate: summary =="]
    for rep in summary.get("stages_run", []):
        lines.append(
            f"  {rep['name']:<10} in {rep['input_rows']:>5}  resumed {rep['skipped_done']:>5}  "
            f"out {rep['output_rows']:>5}  errors {rep['errors']:>3}  {rep['seconds']:7.1f}s"
        )
        for err in rep.get("first_errors", []):
            lines.append(f"      e.g. {err}")
    rows = summary.get("rows", {})
    if rows:
        lines.append(
            f"recordings {rows.get('poses', rows.get('sources', 0))}, questions {rows.get('questions', 0)}, "
            f"solutions {rows.get('solutions', 0)}"
        )
    if "solution_accuracy" in summary:
        policy = summary.get("policy") or {}
        by = f" (policy: {policy['model']}" + (f" + adapter {policy['adapter']})" if policy.get("adapter") else ")")
        lines.append(f"solutions answering correctly: {summary['solution_accuracy']:.1%}{by if policy else ''}")
    if "questions_mixed" in summary:
        mixed = summary["questions_mixed"]
        lines.append(
            f"questions with a correct and an incorrect solution: {mixed['mixed']} of {mixed['questions']} "
            "(a PRM and Best-of-N learn only from these)"
        )
    labels = summary.get("labels")
    if labels:
        by = labels["by_method"]
        lines.append(
            f"steps {labels['steps']}: measurement {by.get('measurement', 0)}, judge {by.get('rag', 0)}, "
            f"Monte-Carlo {by.get('mc', 0)}, MC reuse {by.get('mc_reuse', 0)}, correct-solution {by.get('solution', 0)}"
        )
        agree = labels.get("judge_vs_mc")
        if agree and agree.get("agreement") is not None:
            lines.append(f"judge vs MC on {agree.get('judged', 0)} steps with both: {_figure(agree)} (seed target 92%)")
        measured = labels.get("measurement")
        if measured:
            lines.append(
                f"measurement check: {measured['checkable']} of {measured['steps_checked']} steps checkable "
                f"({measured['supported']} supported, {measured['contradicted']} contradicted)"
            )
            if measured.get("judge_vs_measurement"):
                jm = measured["judge_vs_measurement"]
                lines.append(f"judge vs measurement on {jm.get('judged', 0)} checkable steps: {_figure(jm)}")
    medprm = summary.get("judge_vs_medprm")
    if medprm and "vs_gemini" in medprm:
        lines.append(
            f"judge vs Med-PRM Gemini labels on {medprm['solutions']} solutions: {_figure(medprm['vs_gemini'])}"
        )
        lines.append(
            f"  (Gemini vs 16-rollout MC: {_figure(medprm['gemini_vs_mc_hard'])}; "
            f"ours vs MC: {_figure(medprm['vs_mc_hard'])})"
        )
    if "review_agreement" in summary:
        lines.append(f"clinician review agreement: {_pct(summary['review_agreement'].get('agreement'))}")
    if "cost_table" in summary:
        lines.append(summary["cost_table"])
    lines.append("outputs:")
    for name, path in summary.get("outputs", {}).items():
        lines.append(f"  {name:<14} {path}")
    return "\n".join(lines)


def _figure(agree: dict[str, Any]) -> str:
    """Agreement with kappa and incorrect-step recall beside it (agreement alone hides a judge
    that calls every step correct)."""
    kappa = agree.get("kappa")
    return (
        f"agreement {_pct(agree.get('agreement'))}, kappa {'n/a' if kappa is None else f'{kappa:.2f}'}, "
        f"incorrect-step recall {_pct(agree.get('recall_incorrect'))}"
    )


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"

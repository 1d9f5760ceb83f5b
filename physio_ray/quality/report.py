"""The quality report: every learned part's figures beside their baselines, in one JSON, one page, one plot.

:func:`run_report_quality` runs the selected row builders (:mod:`physio_ray.quality.registry`)
over the other jobs' output folders and writes, under ``output_dir``:

* ``quality.json``: ``{"rows": [...]}``, each row as :mod:`physio_ray.quality.rows` defines it;
* ``quality.md``: the same rows as a table, with the rule, notes and missing reasons;
* ``quality.png``: per row, the value with its 95% interval and the best baseline.

A builder that fails leaves one row naming the error instead of stopping the report.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from physio_ray.figures import save_figure
from physio_ray.quality.config import ReportQualityConfig
from physio_ray.quality.registry import selected_builders
from physio_ray.quality.rows import MIN_ITEMS, best_baseline, missing_row

logger = logging.getLogger(__name__)

__all__ = ["QualityReport", "build_rows", "render_markdown", "run_report_quality"]


@dataclass(frozen=True)
class QualityReport:
    """What the report wrote.

    Attributes:
        rows: the rows, in registry order.
        paths: kind (``json``, ``markdown``, ``png``) -> file written.
    """

    rows: list[dict[str, Any]]
    paths: dict[str, str]

    def render(self) -> str:
        """A short summary for the job's output."""
        learned = [f"{r['component']}/{r['metric']}" for r in self.rows if r["learned"]]
        missing = sum(1 for r in self.rows if r.get("missing"))
        lines = [
            f"quality report: {len(self.rows)} rows, {len(learned)} learned, {missing} missing data",
            *(f"  learned: {name}" for name in learned),
            *(f"{kind}: {path}" for kind, path in self.paths.items()),
        ]
        return "\n".join(lines)


def build_rows(cfg: ReportQualityConfig) -> list[dict[str, Any]]:
    """Rows of every selected builder (one error row for a builder that raises)."""
    rows: list[dict[str, Any]] = []
    for name, builder in selected_builders(cfg.components).items():
        try:
            rows += builder(cfg)
        except Exception as exc:  # noqa: BLE001 - one broken source must not hide the other rows
            logger.exception("row builder %s failed", name)
            rows.append(missing_row(name, "builder", "-", f"row builder {name!r} failed: {type(exc).__name__}: {exc}"))
    return rows


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def render_markdown(rows: list[dict[str, Any]]) -> str:
    """The rows as a markdown page (one table, then notes and missing data).

    >>> from physio_ray.quality.rows import make_row
    >>> print(render_markdown([make_row("policy", "acc", "demo", 40, 0.5, (0.3, 0.7), {"chance": 0.25})]).splitlines()[4])
    | policy | acc | demo | 40 | 0.500 [0.300, 0.700] | chance 0.250 | yes | ci_vs_best_baseline |
    """
    md = [
        "# Quality report",
        "",
        "| component | metric | split | n | value [95% CI] | best baseline | learned | rule |",
        "|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for k, r in enumerate(rows, 1):
        best = best_baseline(r["baselines"], r.get("better", "higher"))
        ci = f" [{_fmt(r['ci95'][0])}, {_fmt(r['ci95'][1])}]" if r["ci95"] else ""
        value = f"{_fmt(r['value'])}{ci}" if r["value"] is not None else "missing"
        base = f"{best[0]} {_fmt(best[1])}" if best else "-"
        metric = r["metric"] + (" (lower is better)" if r.get("better") == "lower" else "")
        md.append(
            f"| {r['component']} | {metric} | {r['split']} | {_fmt(r['n'])} | {value} | {base} | "
            f"{'yes' if r['learned'] else 'no'} | {r.get('rule', '')} |"
        )
        extra = []
        if r.get("missing"):
            extra.append(f"missing: {r['missing']}")
        if len(r["baselines"]) > 1:
            extra.append("baselines: " + ", ".join(f"{n} {_fmt(v)}" for n, v in r["baselines"].items()))
        if r.get("gain_ci95"):
            extra.append(f"gain over {r.get('gain_vs')} [{_fmt(r['gain_ci95'][0])}, {_fmt(r['gain_ci95'][1])}]")
        if r.get("references"):
            extra.append("references: " + ", ".join(f"{n} {_fmt(v)}" for n, v in r["references"].items()))
        if r.get("note"):
            extra.append(r["note"])
        if extra:
            notes.append(f"{k}. {r['component']}/{r['metric']}: " + "; ".join(extra))
    md += [
        "",
        f"learned = beats the best baseline with the gain's 95% interval above zero, on {MIN_ITEMS} items or more",
        "",
    ]
    md += ["## Notes (row number as in the table)", "", *notes] if notes else []
    return "\n".join(md) + "\n"


def plot_rows(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Value with its 95% interval (dot, bar) and best baseline (cross) per row; missing rows marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def bounded(r: dict[str, Any]) -> bool:
        best = best_baseline(r["baselines"], r.get("better", "higher"))
        vals = [r["value"], *(r["ci95"] or []), best[1] if best else None]
        return all(v is None or -1.0 <= v <= 1.0 for v in vals)

    groups = [g for g in ([r for r in rows if bounded(r)], [r for r in rows if not bounded(r)]) if g]
    heights = [max(2, len(g)) for g in groups]
    fig, axes = plt.subplots(
        len(groups), 1, figsize=(9, 0.3 * sum(heights) + 1.2), squeeze=False, gridspec_kw={"height_ratios": heights}
    )
    for ax, group in zip(axes[:, 0], groups, strict=True):
        for y, r in enumerate(group):
            best = best_baseline(r["baselines"], r.get("better", "higher"))
            colour = "tab:green" if r["learned"] else "tab:grey"
            if r["value"] is None:
                ax.text(0.0, y, "missing", va="center", fontsize=6, color="tab:red")
                continue
            if r["ci95"]:
                ax.plot(r["ci95"], [y, y], color=colour, lw=2)
            ax.plot([r["value"]], [y], "o", color=colour, ms=4)
            if best:
                ax.plot([best[1]], [y], "x", color="black", ms=5)
        ax.set_yticks(range(len(group)), [f"{r['component']}/{r['metric']}" for r in group], fontsize=6)
        ax.invert_yaxis()
        ax.grid(axis="x", alpha=0.3)
    axes[0, 0].set_title("value and 95% CI (green: learned, grey: not), x: best baseline", fontsize=8)
    return save_figure(fig, path, dpi=110)


def run_report_quality(cfg: ReportQualityConfig) -> QualityReport:
    """Builds the rows and writes ``quality.json``, ``quality.md`` and (if ``cfg.plot``) ``quality.png``.

    Raises:
        ValueError: when ``cfg.components`` names a component without a builder.
    """
    selected_builders(cfg.components)  # fail on a typo before reading anything
    rows = build_rows(cfg)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": str(out / "quality.json"), "markdown": str(out / "quality.md")}
    Path(paths["json"]).write_text(json.dumps({"rows": rows}, indent=2, allow_nan=False) + "\n")
    Path(paths["markdown"]).write_text(render_markdown(rows))
    if cfg.plot:
        paths["png"] = str(plot_rows(rows, out / "quality.png"))
    return QualityReport(rows, paths)

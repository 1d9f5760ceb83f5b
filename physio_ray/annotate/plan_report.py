"""A plan as ``plan.json`` data, a printed table beside the seed's $3,520 table, and a PNG timeline."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from physio_ray.annotate.plan import SEED_TABLE, SEED_TOTAL, Plan
from physio_ray.annotate.plan_config import FIGURE_NOTES, Figures, PlanAnnotationConfig
from physio_ray.figures import save_figure

__all__ = ["plan_dict", "plot_plan", "render_plan"]


def plan_dict(
    plan: Plan, sensitivity: list[dict[str, Any]], fig: Figures, cfg: PlanAnnotationConfig, cluster_name: str
) -> dict[str, Any]:
    """``plan.json``: ``wall_hours``, ``dollars``, ``per_phase``, ``assumptions`` (+ breakdown, nodes).

    ``assumptions`` has ``measured`` (figure -> value, what it is, source run), ``assumed``
    (figure -> value, what it is, cited source), ``prices_per_hour``, ``startup_s`` and
    ``sensitivity`` (relative change of wall time and $ when each figure is x2 or /2).
    """
    src = cfg.assumptions.sources
    measured = {
        n: {
            "value": getattr(fig, n),
            "what": FIGURE_NOTES[n],
            "source": f"measured here (CPU, this machine): {cfg.run_dir}",
        }
        for n in FIGURE_NOTES
        if n in fig.measured
    }
    assumed = {
        n: {"value": getattr(fig, n), "what": FIGURE_NOTES[n], "source": src.get(n, "assumption (no source given)")}
        for n in FIGURE_NOTES
        if n not in fig.measured
    }
    return {
        "solutions": cfg.solutions,
        "cluster": cluster_name,
        "wall_hours": plan.wall_hours,
        "dollars": plan.dollars,
        "dollars_breakdown": plan.breakdown,
        "per_phase": plan.per_phase,
        "seed_table": {**SEED_TABLE, "total": SEED_TOTAL},
        "assumptions": {
            "measured": measured,
            "assumed": assumed,
            "prices_per_hour": {"value": dict(cfg.prices_per_hour), "source": src.get("prices", "")},
            "startup_s": {"value": dict(fig.startup_s), "source": src.get("startup_s", "")},
            "sensitivity": sensitivity,
        },
        "nodes": plan.nodes,
    }


def render_plan(data: Mapping[str, Any]) -> str:
    """The plan as text: phases beside the seed table, totals, figures with sources, sensitivity."""
    head = f"{'phase':<11}{'items':>8} {'unit':<9}{'s/item':>8}  {'group':<13}{'start_h':>8}{'wall_h':>8}{'peak':>5}{'util':>6}{'$nodes':>9}{'$api':>9}{'$':>9}{'seed $':>9}"
    lines = [f"Plan: {data['solutions']} solutions on {data['cluster']}", head, "-" * len(head)]
    for name, p in data["per_phase"].items():
        seed = "" if p["seed_dollars"] is None else f"{p['seed_dollars']:.0f}"
        lines.append(
            f"{name:<11}{p['items']:>8} {p['unit']:<9}{p['seconds_per_item']:>8.2f}  {p['group']:<13}{p['start_hours']:>8.2f}"
            f"{p['wall_hours']:>8.2f}{p['peak_nodes']:>5}{p['utilisation']:>6.0%}{p['dollars_nodes']:>9.2f}"
            f"{p['dollars_api']:>9.2f}{p['dollars']:>9.2f}{seed:>9}"
        )
    b = data["dollars_breakdown"]
    lines.append(f"{'head node':<92}{b['head']:>9.2f}")
    lines.append(f"{'idle nodes after the job (idle timeout)':<92}{b['idle_after_job']:>9.2f}")
    lines.append(f"{'expert review (human, not simulated)':<92}{'':>9}{SEED_TABLE['review']:>9.0f}")
    lines.append(f"{'total':<92}{data['dollars']:>9.2f}{SEED_TOTAL:>9.0f}")
    lines.append(
        f"wall time {data['wall_hours']:.2f} h, ${data['dollars']:.2f} (seed 000 §5.1: ${SEED_TOTAL:,.0f} incl. $500 review)"
    )
    a = data["assumptions"]
    lines.append("measured here (CPU, this machine):")
    lines += [f"  {n:<27}{v['value']:>10.3f}  {v['what']}" for n, v in a["measured"].items()]
    lines.append("assumed (not measured here):")
    for n, v in a["assumed"].items():
        lines.append(f"  {n:<27}{v['value']:>10.3f}  {v['what']}")
        lines.append(f"  {'':<27}{'':>10}  source: {v['source']}")
    lines.append(f"  prices $/node-h {a['prices_per_hour']['value']}: {a['prices_per_hour']['source']}")
    lines.append(f"  startup s {a['startup_s']['value']}: {a['startup_s']['source']}")
    lines.append("sensitivity (change of wall time / $ when one figure is 2x or 1/2 of the value used):")
    lines.append(f"  {'figure':<27}{'kind':<12}{'wall x2':>9}{'$ x2':>9}{'wall /2':>9}{'$ /2':>9}")
    for r in a["sensitivity"]:
        lines.append(
            f"  {r['figure']:<27}{r['kind']:<12}{r['wall_hours_x2']:>+9.0%}{r['dollars_x2']:>+9.0%}"
            f"{r['wall_hours_half']:>+9.0%}{r['dollars_half']:>+9.0%}"
        )
    return "\n".join(lines)


def plot_plan(data: Mapping[str, Any], path: str | Path) -> Path:
    """Writes a PNG: worker nodes per group over time (start-up light, working dark) and $ per phase vs the seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = sorted({n["group"] for n in data["nodes"]})
    colours = dict(zip(groups, ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"], strict=False))
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(14, 6), gridspec_kw={"width_ratios": [2.2, 1]})
    y = 0
    for g in groups:
        rows = [n for n in data["nodes"] if n["group"] == g]
        for n in rows:
            ax.barh(y, n["ready_h"] - n["launched_h"], left=n["launched_h"], color=colours[g], alpha=0.3, height=0.8)
            ax.barh(y, n["stopped_h"] - n["ready_h"], left=n["ready_h"], color=colours[g], height=0.8)
            y += 1
        ax.text(0, y - len(rows) - 0.6, f"{g}: {len(rows)} nodes launched", fontsize=8, va="top")
        y += 1
    for i, (name, p) in enumerate(data["per_phase"].items()):
        ax.axvline(p["start_hours"], color="grey", lw=0.6, ls="--")
        ax.text(p["start_hours"], y + 0.3 + (i % 3) * 1.2, name, fontsize=7)
    ax.set_xlabel("hours")
    ax.set_ylabel("worker nodes (light: starting, dark: up)")
    ax.set_title(f"{data['solutions']} solutions: {data['wall_hours']:.1f} h, ${data['dollars']:.0f}")
    names = list(data["per_phase"])
    ours = [data["per_phase"][n]["dollars"] for n in names]
    seed = [data["per_phase"][n]["seed_dollars"] or 0.0 for n in names]
    xs = range(len(names))
    bx.bar([x - 0.2 for x in xs], ours, width=0.4, label=f"plan (${data['dollars']:.0f})")
    bx.bar([x + 0.2 for x in xs], seed, width=0.4, label=f"seed 000 §5.1 (${SEED_TOTAL:,.0f})")
    bx.set_xticks(list(xs), names, rotation=30, fontsize=8)
    bx.set_yscale("symlog", linthresh=1.0)
    bx.set_ylabel("$ per phase")
    bx.legend(fontsize=8)
    return save_figure(fig, path, dpi=110)

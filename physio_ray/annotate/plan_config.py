"""Typed configuration of ``jobs/plan_annotation.py`` and the figures a plan rests on."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "FIGURE_NOTES",
    "Figures",
    "LLMServerConfig",
    "LedgerError",
    "PlanAnnotationConfig",
    "PlanAssumptions",
    "measured_figures",
    "read_run",
]

#: Every figure of a plan: what it is per item, and where a measured one comes from.
FIGURE_NOTES: dict[str, str] = {
    "poses_s_per_recording": "decode + pose actor-seconds per recording (summary.json stages_run[poses])",
    "keyframes_s_per_recording": "keyframe actor-seconds per recording (summary.json stages_run[keyframes])",
    "questions_s_per_question": "question-writer actor-seconds per question (summary.json stages_run[questions])",
    "questions_per_recording": "questions per recording (summary.json rows)",
    "solutions_per_question": "solutions per question (summary.json rows)",
    "solution_tokens_in": "prompt tokens per solution (cost_ledger.json stages[solutions])",
    "solution_tokens_out": "generated tokens per solution (cost_ledger.json stages[solutions])",
    "judge_calls_per_solution": "judge calls per solution (cost_ledger.json stages[judged])",
    "judge_tokens_in": "judge prompt tokens per call (cost_ledger.json stages[judged])",
    "judge_tokens_out": "judge output tokens per call (cost_ledger.json stages[judged], else assumed)",
    "mc_rollouts_per_solution": "Monte-Carlo rollouts per solution (cost_ledger.json stages[annotated])",
    "mc_tokens_in": "prompt tokens per rollout (cost_ledger.json stages[annotated])",
    "mc_tokens_out": "generated tokens per rollout (cost_ledger.json stages[annotated])",
    "cpu_speed": "cluster vCPU speed / this machine's core on the CPU stages",
    "prefill_tokens_per_s": "prompt tokens/s of one GPU of the sampling group (8B model, vLLM)",
    "decode_tokens_per_s": "generated tokens/s of one GPU of the sampling group (8B model, vLLM, batched)",
    "token_scale": "tokens per item of the cluster's 8B models / the measured small model's",
    "startup_scale": "factor on every node type's start-up delay (startup_s)",
    "api_latency_s": "seconds per judge API call (one call in flight per judge actor)",
}


@dataclass(frozen=True)
class PlanAssumptions:
    """Figures not measured by the annotation run (the ``assumptions:`` block).

    Attributes:
        cpu_speed: cluster vCPU / this machine's core.
        prefill_tokens_per_s, decode_tokens_per_s: one sampling-group GPU on an 8B model in vLLM.
        token_scale: the cluster models' tokens per item over the measured model's.
        startup_s: seconds from launch to a working node, per node type (``default`` for others).
        api_latency_s: seconds per judge API call.
        judge_tokens_out: judge output tokens per call, used when the measured judge wrote none.
        sources: figure name -> where the number comes from (printed and written to plan.json).
    """

    cpu_speed: float = 1.0
    prefill_tokens_per_s: float = 2500.0
    decode_tokens_per_s: float = 250.0
    token_scale: float = 1.0
    startup_s: dict[str, float] = field(default_factory=lambda: {"default": 300.0})
    api_latency_s: float = 5.0
    judge_tokens_out: float = 300.0
    sources: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("cpu_speed", "prefill_tokens_per_s", "decode_tokens_per_s", "token_scale", "api_latency_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"assumptions.{name}={getattr(self, name)} must be > 0")
        if self.judge_tokens_out < 0 or any(v < 0 for v in self.startup_s.values()):
            raise ValueError("assumptions.judge_tokens_out and assumptions.startup_s must be >= 0")
        unknown = sorted(set(self.sources) - set(FIGURE_NOTES) - {"startup_s", "prices"})
        if unknown:
            raise ValueError(f"assumptions.sources names unknown figures {unknown}; known: {sorted(FIGURE_NOTES)}")


@dataclass(frozen=True)
class LLMServerConfig:
    """The OpenAI-compatible vLLM server the Monte-Carlo rollouts call (Ray Serve LLM on GPU nodes).

    Attributes:
        node_type: node type of ``cluster.yaml`` its replicas run on.
        bundle: resources of one replica.
        min_replicas, max_replicas: its autoscaling bounds.
    """

    node_type: str = "gpu_sampling"
    bundle: dict[str, float] = field(default_factory=lambda: {"CPU": 4.0, "GPU": 1.0})
    min_replicas: int = 1
    max_replicas: int = 8

    def __post_init__(self) -> None:
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise ValueError(
                f"llm_server: need 1 <= min_replicas ({self.min_replicas}) <= max_replicas ({self.max_replicas})"
            )


@dataclass(frozen=True)
class PlanAnnotationConfig:
    """The plan job (``jobs/plan_annotation.py``).

    Attributes:
        output_dir: where ``plan.json`` and ``plan.png`` go.
        run_dir: the measured annotation run (``cost_ledger.json`` + ``summary.json``).
        measured_config: the annotate config of that run (its actor counts).
        annotate_config: the annotate config to plan (actor pools, API prices).
        cluster_yaml: the cluster-launcher file whose node types run it.
        solutions: solutions of the planned run (seed: 40,000).
        prices_per_hour: $ per node-hour per node type of ``cluster_yaml``.
        llm_server: the vLLM server of the Monte-Carlo rollouts.
        assumptions: the figures not measured here.
        dt_s: simulation time step.
        plot: write ``plan.png``.
    """

    output_dir: str = "outputs/plan-annotation"
    run_dir: str = "outputs/annotate-local"
    measured_config: str = "configs/annotate/local.yaml"
    annotate_config: str = "configs/annotate/cluster.yaml"
    cluster_yaml: str = "cluster.yaml"
    solutions: int = 40000
    prices_per_hour: dict[str, float] = field(default_factory=dict)
    llm_server: LLMServerConfig = field(default_factory=LLMServerConfig)
    assumptions: PlanAssumptions = field(default_factory=PlanAssumptions)
    dt_s: float = 30.0
    plot: bool = True

    def __post_init__(self) -> None:
        if self.solutions < 1:
            raise ValueError(f"solutions={self.solutions} must be >= 1")
        if self.dt_s <= 0:
            raise ValueError(f"dt_s={self.dt_s} must be > 0")
        if any(v < 0 for v in self.prices_per_hour.values()):
            raise ValueError(f"prices_per_hour={self.prices_per_hour} must be >= 0")


@dataclass(frozen=True)
class Figures:
    """Per-item figures of a plan: measured ones (names in ``measured``) and assumptions."""

    poses_s_per_recording: float = 0.0
    keyframes_s_per_recording: float = 0.0
    questions_s_per_question: float = 0.0
    questions_per_recording: float = 1.0
    solutions_per_question: float = 4.0
    solution_tokens_in: float = 0.0
    solution_tokens_out: float = 0.0
    judge_calls_per_solution: float = 1.0
    judge_tokens_in: float = 0.0
    judge_tokens_out: float = 0.0
    mc_rollouts_per_solution: float = 0.0
    mc_tokens_in: float = 0.0
    mc_tokens_out: float = 0.0
    cpu_speed: float = 1.0
    prefill_tokens_per_s: float = 2500.0
    decode_tokens_per_s: float = 250.0
    token_scale: float = 1.0
    startup_scale: float = 1.0
    api_latency_s: float = 5.0
    startup_s: dict[str, float] = field(default_factory=dict)
    measured: tuple[str, ...] = ()

    @classmethod
    def assumed(cls, a: PlanAssumptions) -> Figures:
        """The assumption part of the figures (measured fields at their defaults)."""
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in dataclasses.asdict(a).items() if k in names}
        return cls(**kw)


class LedgerError(ValueError):
    """The measured run lacks figures the plan needs (one line per missing figure)."""

    def __init__(self, missing: list[str], run_dir: str) -> None:
        self.missing = missing
        lines = [f"the run in {run_dir!r} lacks figures the plan needs:", *(f"  - {m}" for m in missing)]
        lines.append(
            "rerun the annotation job into a fresh output_dir (python jobs/annotate.py configs/annotate/local.yaml)"
        )
        super().__init__("\n".join(lines))


def read_run(run_dir: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Reads ``cost_ledger.json`` and ``summary.json`` of an annotate output dir (``{}`` when absent)."""
    run = Path(run_dir)
    out = []
    for name in ("cost_ledger.json", "summary.json"):
        path = run / name
        out.append(json.loads(path.read_text()) if path.is_file() else {})
    return out[0], out[1]


def measured_figures(
    ledger: Mapping[str, Any],
    summary: Mapping[str, Any],
    measured_actors: Mapping[str, int],
    assumed: Figures,
    run_dir: str = "<run>",
) -> Figures:
    """The per-item figures of a measured run, merged into ``assumed`` (the assumption fields).

    Args:
        ledger: ``cost_ledger.json`` (``stages``: solutions, judged, annotated with calls/tokens/rollouts).
        summary: ``summary.json`` (``stages_run`` seconds and ``processed`` of poses, keyframes,
            questions; ``rows``).
        measured_actors: actors of each CPU stage in the measured run (its stage seconds are
            wall seconds of that many actors).
        assumed: figures holding the assumptions (GPU throughput, start-up, latency...).
        run_dir: for messages.

    Returns:
        ``assumed`` with every measured field replaced.

    Raises:
        LedgerError: naming every missing figure (file, stage, key).
    """
    missing: list[str] = []
    ran = {r.get("name"): r for r in summary.get("stages_run", [])}
    cpu: dict[str, float] = {}
    for name in ("poses", "keyframes", "questions"):
        rep = ran.get(name)
        if not rep or not rep.get("processed") or "seconds" not in rep:
            missing.append(
                f"summary.json: stages_run[{name}] with processed > 0 and seconds (the stage's measured rows/s; "
                "a fully resumed stage has none)"
            )
            continue
        cpu[name] = float(rep["seconds"]) * measured_actors.get(name, 1) / float(rep["processed"])
    rows = summary.get("rows", {})
    for key in ("poses", "questions", "solutions"):
        if not rows.get(key):
            missing.append(f"summary.json: rows.{key} (> 0)")
    stages = {s.get("stage"): s for s in ledger.get("stages", [])}
    need = {
        "solutions": ("rows", "tokens_in", "tokens_out"),
        "judged": ("rows", "calls", "tokens_in", "tokens_out"),
        "annotated": ("rows", "rollouts", "tokens_in", "tokens_out"),
    }
    for name, keys in need.items():
        s = stages.get(name)
        if s is None:
            missing.append(f"cost_ledger.json: stage {name!r} ({', '.join(keys)})")
            continue
        missing += [f"cost_ledger.json: stages[{name}].{k}" for k in keys if k not in s]
        if s.get("rows") == 0:
            missing.append(f"cost_ledger.json: stages[{name}].rows is 0")
    if missing:
        raise LedgerError(missing, run_dir)
    n_sol, n_q, n_rec = float(rows["solutions"]), float(rows["questions"]), float(rows["poses"])
    sol, judge, mc = stages["solutions"], stages["judged"], stages["annotated"]
    calls = float(judge["calls"]) or n_sol
    rollouts = float(mc["rollouts"])
    measured: dict[str, Any] = {
        "poses_s_per_recording": cpu["poses"],
        "keyframes_s_per_recording": cpu["keyframes"],
        "questions_s_per_question": cpu["questions"],
        "questions_per_recording": n_q / n_rec,
        "solutions_per_question": n_sol / n_q,
        "solution_tokens_in": float(sol["tokens_in"]) / n_sol,
        "solution_tokens_out": float(sol["tokens_out"]) / n_sol,
        "judge_calls_per_solution": calls / n_sol,
        "judge_tokens_in": float(judge["tokens_in"]) / calls,
        "mc_rollouts_per_solution": rollouts / n_sol,
        "mc_tokens_in": float(mc["tokens_in"]) / rollouts if rollouts else 0.0,
        "mc_tokens_out": float(mc["tokens_out"]) / rollouts if rollouts else 0.0,
    }
    if float(judge["tokens_out"]) > 0:  # else the judge wrote no tokens here (local scoring): keep the assumption
        measured["judge_tokens_out"] = float(judge["tokens_out"]) / calls
    return dataclasses.replace(assumed, **measured, measured=tuple(sorted(measured)))

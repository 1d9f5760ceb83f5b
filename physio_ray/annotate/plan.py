"""Plan a cluster annotation run from one measured run: wall time, utilisation and $ per phase.

The measured run (``jobs/annotate.py`` output: ``cost_ledger.json`` + ``summary.json``) gives the
per-item costs: CPU seconds per recording/question of the CPU stages, and tokens, calls and
rollouts per solution of the model stages. GPU throughput, node start-up, API latency and prices
are assumptions (named in :data:`FIGURE_NOTES` with their source). :func:`simulate` plays the
job stage by stage on the node types of ``cluster.yaml``: the autoscaler launches nodes while a
stage's queue is deep (up to the pool's actors, the node type's ``max_workers`` and the
cluster's), each node works after its start-up delay, and idle nodes go after
``idle_timeout_minutes``. Pure: plain dicts and dataclasses in, a :class:`Plan` out.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from physio_ray.annotate.config import AnnotateConfig
from physio_ray.annotate.plan_config import FIGURE_NOTES, Figures, PlanAnnotationConfig
from physio_ray.annotate.stages import stage as stage_row
from physio_ray.cluster import ClusterSpec, NodeType

__all__ = ["PHASES", "SEED_TABLE", "SEED_TOTAL", "Phase", "Plan", "build_phases", "plan_annotation", "simulate"]

#: Seed 000 §5.1 "Hybrid Annotation Cost Breakdown" (10,000 questions, 40,000 solutions).
SEED_TABLE: dict[str, float] = {"questions": 120.0, "judged": 2500.0, "annotated": 400.0, "review": 500.0}
SEED_TOTAL = 3520.0
PHASES = ("poses", "keyframes", "questions", "solutions", "judged", "annotated")


@dataclass(frozen=True)
class Phase:
    """One stage of the planned job.

    Attributes:
        name: stage name (``poses`` ... ``annotated``).
        items: work items (recordings, questions, judge calls or rollouts).
        unit: what an item is.
        seconds_per_item: slot-seconds one item takes (a slot = one actor or server replica).
        group: node type the work runs on.
        bundle: resources of one slot.
        max_slots, min_slots: the pool's autoscaling bounds.
        batch: items per batch (queue depth is counted in batches).
        api_usd: API dollars (token-priced stages).
        companion: node type and count that must be up while the phase runs (client actors).
        basis: where ``seconds_per_item`` comes from.
    """

    name: str
    items: int
    unit: str
    seconds_per_item: float
    group: str
    bundle: dict[str, float]
    max_slots: int
    min_slots: int
    batch: int
    api_usd: float = 0.0
    companion: tuple[str, int] | None = None
    basis: str = ""


def _pick_group(cluster: ClusterSpec, bundle: Mapping[str, float], where: str) -> NodeType:
    """The worker node type the autoscaler would launch for ``bundle`` (GPU-free types first, then the smallest)."""
    fits = [n for n in cluster.workers if n.fits(bundle) and n.max_workers > 0]
    if not fits:
        raise ValueError(f"{where}: no worker node type of {cluster.name!r} holds {dict(bundle)}")
    wants_gpu = bundle.get("GPU", 0) > 0
    return min(fits, key=lambda n: (n.resources.get("GPU", 0) > 0 and not wants_gpu, sum(n.resources.values())))


def build_phases(fig: Figures, job: AnnotateConfig, cfg: PlanAnnotationConfig, cluster: ClusterSpec) -> list[Phase]:
    """The six phases of a ``cfg.solutions``-solution run of ``job`` on ``cluster``.

    Args:
        fig: measured and assumed per-item figures.
        job: the annotation config to run on the cluster (its actor pools and API prices).
        cfg: the plan's settings (solutions, LLM server).
        cluster: node types.

    Returns:
        Phases in pipeline order.

    Raises:
        ValueError: for a local judge (the plan prices the judge as API calls) or a stage's
            resources that no worker node type holds.
    """
    if job.judge.backend == "local":
        raise ValueError(
            "the plan models the judge as API calls (judge.backend gemini or openai); got judge.backend=local"
        )
    questions = math.ceil(cfg.solutions / fig.solutions_per_question)
    recordings = math.ceil(questions / fig.questions_per_recording)
    gpu_s = lambda t_in, t_out: fig.token_scale * (t_in / fig.prefill_tokens_per_s + t_out / fig.decode_tokens_per_s)  # noqa: E731
    phases = []

    def pool(name: str, items: int, unit: str, spi: float, basis: str, **kw: Any) -> Phase:
        res = getattr(job, stage_row(name).config_key).resources
        bundle = {k: v for k, v in {"CPU": res.cpus_per_actor, "GPU": res.gpus_per_actor}.items() if v > 0}
        group = _pick_group(cluster, bundle, f"{name} ({stage_row(name).config_key}.resources)")
        return Phase(name, items, unit, spi, group.name, bundle, res.actors, res.min_actors or res.actors,
                     res.batch_size, basis=basis, **kw)  # fmt: skip

    cpu = f"measured CPU here / cpu_speed {fig.cpu_speed:g}"
    phases.append(pool("poses", recordings, "recording", fig.poses_s_per_recording / fig.cpu_speed, cpu))
    phases.append(pool("keyframes", recordings, "recording", fig.keyframes_s_per_recording / fig.cpu_speed, cpu))
    q_basis = (
        cpu
        if job.questions.writer == "template"
        else cpu + " (template writer; the planned llm writer is not measured)"
    )
    phases.append(pool("questions", questions, "question", fig.questions_s_per_question / fig.cpu_speed, q_basis))
    spi = gpu_s(fig.solution_tokens_in, fig.solution_tokens_out) * fig.solutions_per_question
    phases.append(pool("solutions", questions, "question", spi, "measured tokens / assumed vLLM tokens/s"))
    calls = math.ceil(cfg.solutions * fig.judge_calls_per_solution)
    prices_in, prices_out = job.export.price_per_mtok_in, job.export.price_per_mtok_out
    api = (
        calls
        * (fig.judge_tokens_in * prices_in.get("judged", 0.0) + fig.judge_tokens_out * prices_out.get("judged", 0.0))
        / 1e6
    )
    phases.append(
        pool("judged", calls, "call", fig.api_latency_s, "assumed API latency, one call per actor", api_usd=api)
    )
    rollouts = math.ceil(cfg.solutions * fig.mc_rollouts_per_solution)
    server = cluster.node_type(cfg.llm_server.node_type)
    mc_res = job.montecarlo.resources
    client = _pick_group(cluster, {"CPU": mc_res.cpus_per_actor}, "montecarlo.resources")
    clients = math.ceil(mc_res.actors * mc_res.cpus_per_actor / max(client.resources.get("CPU", 1.0), 1.0))
    phases.append(
        Phase(
            "annotated",
            rollouts,
            "rollout",
            gpu_s(fig.mc_tokens_in, fig.mc_tokens_out),
            server.name,
            dict(cfg.llm_server.bundle),
            cfg.llm_server.max_replicas,
            cfg.llm_server.min_replicas,
            mc_res.batch_size,
            companion=(client.name, clients),
            basis="measured tokens / assumed vLLM tokens/s on the LLM server",
        )  # fmt: skip
    )
    return phases


@dataclass
class _Node:
    group: str
    launched: float
    ready: float
    last_busy: float
    stopped: float | None = None


@dataclass(frozen=True)
class Plan:
    """The simulated run.

    Attributes:
        wall_hours: from the first launch to the last item.
        dollars: nodes (head included, idle tails included) + API.
        per_phase: phase name -> figures (see :func:`simulate`).
        nodes: every worker node: group, launched, ready, stopped (hours).
        breakdown: dollars by kind (``workers``, ``head``, ``idle_after_job``, ``api``).
    """

    wall_hours: float
    dollars: float
    per_phase: dict[str, dict[str, Any]]
    nodes: list[dict[str, Any]] = field(default_factory=list)
    breakdown: dict[str, float] = field(default_factory=dict)


def simulate(phases: list[Phase], cluster: ClusterSpec, prices: Mapping[str, float], fig: Figures, dt_s: float) -> Plan:
    """Plays the phases in order on an autoscaling cluster (fixed time step, deterministic).

    Each step: the phase wants ``clamp(ceil(items left / batch), min_slots, max_slots)`` slots,
    the autoscaler launches nodes of its group towards that (at most ``max(5, upscaling_speed x
    running)`` pending, within the group's and the cluster's ``max_workers``), ready nodes work,
    and nodes idle for ``idle_timeout_minutes`` stop (down to the group's ``min_workers``).

    Returns:
        The :class:`Plan`; ``per_phase[name]`` has ``items``, ``unit``, ``seconds_per_item``,
        ``group``, ``start_hours``, ``wall_hours``, ``peak_nodes``, ``node_hours``,
        ``utilisation`` (busy slot-seconds / slot-seconds of the group's live nodes),
        ``dollars_nodes``, ``dollars_api``, ``dollars``, ``seed_dollars``, ``basis``.
    """
    idle_s = cluster.idle_timeout_minutes * 60.0
    nodes: list[_Node] = []
    t = 0.0
    per_phase: dict[str, dict[str, Any]] = {}
    cost = lambda dur, n: dur * prices.get(n.group, 0.0) / 3600.0  # noqa: E731

    def step(dur: float, bucket: dict[str, float] | None) -> None:
        for n in nodes:
            if n.stopped is None:
                if bucket is not None:
                    bucket["usd"] += cost(dur, n)
                    bucket.setdefault(n.group, 0.0)
                    bucket[n.group] += dur / 3600.0
        for g in {n.group for n in nodes}:
            live = [n for n in nodes if n.group == g and n.stopped is None]
            floor = cluster.node_type(g).min_workers
            for n in sorted(live, key=lambda n: n.last_busy):
                if len([m for m in live if m.stopped is None]) <= floor:
                    break
                if n.ready <= t + dur and t + dur - max(n.last_busy, n.ready) >= idle_s:
                    n.stopped = t + dur

    def launch(group: NodeType, want: int) -> None:
        live = [n for n in nodes if n.group == group.name and n.stopped is None]
        workers = sum(1 for n in nodes if n.stopped is None)
        running = sum(1 for n in nodes if n.stopped is None and n.ready <= t)
        pending = workers - running
        room = min(want, group.max_workers) - len(live)
        room = min(room, cluster.max_workers - workers, max(5, int(cluster.upscaling_speed * running)) - pending)
        start = fig.startup_s.get(group.name, fig.startup_s.get("default", 300.0)) * fig.startup_scale
        for _ in range(max(0, room)):
            nodes.append(_Node(group.name, t, t + start, t + start))

    for ph in phases:
        group = cluster.node_type(ph.group)
        per_node = group.slots(ph.bundle)
        left_items = float(ph.items)
        busy = slot_s = 0.0
        bucket: dict[str, float] = {"usd": 0.0}
        start, peak = t, 0
        while left_items > 1e-9 and ph.seconds_per_item > 0:
            want = min(ph.max_slots, max(ph.min_slots, math.ceil(left_items / ph.batch)))
            launch(group, math.ceil(want / per_node))
            if ph.companion:
                launch(cluster.node_type(ph.companion[0]), ph.companion[1])
            ready = [n for n in nodes if n.group == ph.group and n.stopped is None and n.ready <= t]
            peak = max(peak, sum(1 for n in nodes if n.group == ph.group and n.stopped is None))
            slots = min(len(ready) * per_node, want)
            dur = dt_s
            if slots:
                dur = min(dt_s, left_items * ph.seconds_per_item / slots)
                left_items -= slots * dur / ph.seconds_per_item
                busy += slots * dur
                for n in ready[: math.ceil(slots / per_node)]:
                    n.last_busy = t + dur
            if ph.companion:
                for n in nodes:
                    if n.group == ph.companion[0] and n.stopped is None and n.ready <= t:
                        n.last_busy = t + dur
            slot_s += sum(1 for n in nodes if n.group == ph.group and n.stopped is None) * per_node * dur
            step(dur, bucket)
            t += dur
        usd_nodes = bucket.pop("usd")
        per_phase[ph.name] = {
            "items": ph.items,
            "unit": ph.unit,
            "seconds_per_item": ph.seconds_per_item,
            "group": ph.group,
            "start_hours": start / 3600.0,
            "wall_hours": (t - start) / 3600.0,
            "peak_nodes": peak,
            "node_hours": bucket,
            "utilisation": busy / slot_s if slot_s else 0.0,
            "dollars_nodes": usd_nodes,
            "dollars_api": ph.api_usd,
            "dollars": usd_nodes + ph.api_usd,
            "seed_dollars": SEED_TABLE.get(ph.name),
            "basis": ph.basis,
        }
    wall = t
    tail = {"usd": 0.0}
    while any(n.stopped is None and cluster.node_type(n.group).min_workers == 0 for n in nodes):
        step(dt_s, tail)
        t += dt_s
    head = wall * prices.get(cluster.head_node_type, 0.0) / 3600.0
    workers = sum(p["dollars_nodes"] for p in per_phase.values())
    api = sum(p["dollars_api"] for p in per_phase.values())
    breakdown = {"workers": workers, "head": head, "idle_after_job": tail["usd"], "api": api}
    node_rows = [
        {
            "group": n.group,
            "launched_h": n.launched / 3600,
            "ready_h": n.ready / 3600,
            "stopped_h": (n.stopped or t) / 3600,
        }
        for n in nodes
    ]
    return Plan(wall / 3600.0, sum(breakdown.values()), per_phase, node_rows, breakdown)


def plan_annotation(
    fig: Figures, job: AnnotateConfig, cfg: PlanAnnotationConfig, cluster: ClusterSpec
) -> tuple[Plan, list[dict[str, Any]]]:
    """The plan and its sensitivity table (each figure x2 and /2, one at a time).

    Returns:
        ``(plan, rows)``; each row: ``figure``, ``kind`` (measured / assumption), ``value``,
        ``wall_hours_x2``, ``dollars_x2``, ``wall_hours_half``, ``dollars_half`` (relative
        changes, e.g. 0.5 = +50%).
    """
    run = lambda f: simulate(build_phases(f, job, cfg, cluster), cluster, cfg.prices_per_hour, f, cfg.dt_s)  # noqa: E731
    base = run(fig)
    rows = []
    for name in FIGURE_NOTES:
        value = getattr(fig, name)
        row: dict[str, Any] = {
            "figure": name,
            "kind": "measured" if name in fig.measured else "assumption",
            "value": value,
        }
        for label, factor in (("x2", 2.0), ("half", 0.5)):
            changed: dict[str, Any] = {name: value * factor}
            p = run(dataclasses.replace(fig, **changed))
            row[f"wall_hours_{label}"] = p.wall_hours / base.wall_hours - 1 if base.wall_hours else 0.0
            row[f"dollars_{label}"] = p.dollars / base.dollars - 1 if base.dollars else 0.0
        rows.append(row)
    return base, rows

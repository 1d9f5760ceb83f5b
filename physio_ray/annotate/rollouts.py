"""The Monte-Carlo rollout schedule of one solution, and its replay on recorded rollouts.

Pure bookkeeping: :class:`RolloutPlan` decides which step prefixes to sample next and when a
step is settled (shared by :class:`~physio_ray.annotate.montecarlo.MonteCarloAnnotator` and
the simulator); :func:`simulate_adaptive` replays it on recorded rollouts (Med-PRM's 16 per
step) and :func:`budget_soft_errors` measures how far fixed budgets land from the 16-rollout
soft label. Label vocabulary (MC sources, hard labels) as in :mod:`physio_ray.annotate.labels`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["RolloutPlan", "SimResult", "budget_soft_errors", "simulate_adaptive"]


class RolloutPlan:
    """Which step prefixes of one solution to roll out next, and when each step is settled.

    Pure bookkeeping, shared by the annotator and the simulator. With ``reuse``, targets are
    processed from the last step to the first (``steps_in_flight`` at a time) so that one
    correct rollout from step ``k`` settles every earlier target as ``"mc_reuse"``; a correct
    solution settles all targets as ``"solution"`` with no rollouts. ``mode="adaptive"`` stops
    a step at its first correct rollout (the hard label can no longer change), ``"full"``
    always spends ``max_rollouts``.

    Args:
        targets: step indices that need Monte-Carlo.
        max_rollouts: rollouts per step at most.
        batch: rollouts requested per step per round.
        mode: ``"adaptive"`` or ``"full"``.
        reuse: OmegaPRM-style reuse (see above).
        solution_correct: whether the solution's own final answer is correct.
        steps_in_flight: with reuse, how many targets of this solution are sampled per round.
        solution_rule: apply the correct-solution rule (default: same as ``reuse``).
    """

    def __init__(
        self,
        targets: Sequence[int],
        *,
        max_rollouts: int,
        batch: int,
        mode: str = "adaptive",
        reuse: bool = True,
        solution_correct: bool = False,
        steps_in_flight: int = 1,
        solution_rule: bool | None = None,
    ) -> None:
        if mode not in ("adaptive", "full"):
            raise ValueError(f"mode={mode!r} must be 'adaptive' or 'full'")
        if not 1 <= batch <= max_rollouts or steps_in_flight < 1:
            raise ValueError(f"need 1 <= batch ({batch}) <= max_rollouts ({max_rollouts}) and steps_in_flight >= 1")
        self.max_rollouts, self.batch, self.mode, self.reuse = max_rollouts, batch, mode, reuse
        self.steps_in_flight = steps_in_flight
        self.used: dict[int, int] = {k: 0 for k in targets}
        self.correct: dict[int, int] = {k: 0 for k in targets}
        self.source: dict[int, str | None] = {k: None for k in targets}
        self._order = sorted(self.used, reverse=True) if reuse else sorted(self.used)
        if (reuse if solution_rule is None else solution_rule) and solution_correct:
            for k in self.source:
                self.source[k] = "solution"

    @property
    def done(self) -> bool:
        """True once every target is settled."""
        return all(src is not None for src in self.source.values())

    def requests(self) -> list[tuple[int, int]]:
        """The next round: ``[(step_idx, n_rollouts)]``, empty when done."""
        open_steps = [k for k in self._order if self.source[k] is None]
        if self.reuse:
            open_steps = open_steps[: self.steps_in_flight]
        return [(k, min(self.batch, self.max_rollouts - self.used[k])) for k in open_steps]

    def record(self, step: int, outcomes: Sequence[bool]) -> None:
        """Adds the scored rollouts of one step and settles what they decide."""
        self.used[step] += len(outcomes)
        self.correct[step] += int(sum(bool(o) for o in outcomes))
        if self.correct[step] > 0 and self.reuse:
            for j in self.source:
                if j < step and self.source[j] is None:
                    self.source[j] = "mc_reuse"
        if self.source[step] is None and (
            (self.mode == "adaptive" and self.correct[step] > 0) or self.used[step] >= self.max_rollouts
        ):
            self.source[step] = "mc"

    def abort(self) -> None:
        """Stops all sampling (e.g. after an engine error); unsettled targets stay ``None``."""
        self._order = []

    def score(self, step: int) -> float | None:
        """Fraction of correct rollouts for an ``"mc"`` step, else ``None``."""
        if self.source.get(step) != "mc" or self.used[step] == 0:
            return None
        return self.correct[step] / self.used[step]


@dataclass
class SimResult:
    """One simulated solution: per-step rollouts spent and the labels they produce.

    Attributes:
        rollouts: ``[S]`` rollouts sampled per step.
        hard: ``[S]`` hard labels.
        soft: ``[S]`` MC estimates (``None`` for reuse/solution steps).
        sources: ``[S]`` ``"mc"`` | ``"mc_reuse"`` | ``"solution"``.
        rounds: sequential sampling rounds the solution needed (latency, in engine calls).
    """

    rollouts: list[int] = field(default_factory=list)
    hard: list[int] = field(default_factory=list)
    soft: list[float | None] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    rounds: int = 0


def simulate_adaptive(
    soft_labels_16: Sequence[float],
    batch: int,
    max_rollouts: int,
    reuse: bool,
    rng: np.random.Generator,
    *,
    solution_correct: bool = False,
    mode: str = "adaptive",
    pool: int = 16,
    solution_rule: bool | None = None,
    steps_in_flight: int = 1,
) -> SimResult:
    """Replays :class:`RolloutPlan` on recorded rollouts: every step of a solution goes to MC.

    A step whose recorded soft label is ``k / pool`` is turned into a random order of ``k``
    correct and ``pool - k`` incorrect rollouts; the plan draws from it in order.

    Args:
        soft_labels_16: ``[S]`` recorded soft labels, multiples of ``1 / pool``.
        batch: rollouts per round.
        max_rollouts: budget per step (``<= pool``).
        reuse: OmegaPRM-style reuse (including the correct-solution rule).
        rng: random generator for the rollout orders.
        solution_correct: whether the solution's own answer is correct.
        mode: ``"adaptive"`` or ``"full"``.
        pool: rollouts behind each recorded soft label.
        solution_rule: apply the correct-solution rule (default: same as ``reuse``).
        steps_in_flight: with reuse, targets sampled per round (see :class:`RolloutPlan`).

    Returns:
        A :class:`SimResult`.

    Raises:
        ValueError: when a soft label is not a multiple of ``1 / pool`` or the budget exceeds it.
    """
    if max_rollouts > pool:
        raise ValueError(f"max_rollouts={max_rollouts} exceeds the {pool} recorded rollouts per step")
    draws = []
    for s in soft_labels_16:
        k = round(float(s) * pool)
        if not math.isclose(k, float(s) * pool, abs_tol=1e-6) or not 0 <= k <= pool:
            raise ValueError(f"soft label {s} is not a multiple of 1/{pool}")
        draws.append(rng.permutation(np.array([1] * k + [0] * (pool - k), dtype=bool)))
    n_steps = len(draws)
    plan = RolloutPlan(
        range(n_steps),
        max_rollouts=max_rollouts,
        batch=batch,
        mode=mode,
        reuse=reuse,
        solution_correct=solution_correct,
        solution_rule=solution_rule,
        steps_in_flight=steps_in_flight,
    )
    rounds = 0
    while not plan.done:
        rounds += 1
        for step, n in plan.requests():
            start = plan.used[step]
            plan.record(step, list(draws[step][start : start + n]))
    out = SimResult(rounds=rounds)
    for k in range(n_steps):
        src = plan.source[k]
        assert src is not None
        out.rollouts.append(plan.used[k])
        out.sources.append(src)
        out.soft.append(plan.score(k))
        out.hard.append(1 if src != "mc" else int(plan.correct[k] > 0))
    return out


def budget_soft_errors(
    soft_labels_16: Sequence[float], budgets: Sequence[int], rng: np.random.Generator, *, pool: int = 16
) -> dict[int, list[float]]:
    """Absolute error of a ``b``-rollout soft estimate vs the ``pool``-rollout one, per step.

    Each step's ``pool`` recorded outcomes are put in one random order; the ``b``-rollout
    estimate is the fraction correct among the first ``b`` (sampling without replacement from
    what was observed, so ``b = pool`` has error 0).

    Args:
        soft_labels_16: ``[S]`` recorded soft labels, multiples of ``1 / pool``.
        budgets: rollout budgets, each in ``1..pool``.
        rng: random generator.
        pool: rollouts behind each recorded soft label.

    Returns:
        ``{b: [S] absolute errors}``.

    Raises:
        ValueError: on a budget outside ``1..pool``.
    """
    if any(not 1 <= b <= pool for b in budgets):
        raise ValueError(f"budgets {list(budgets)} must lie in 1..{pool}")
    out: dict[int, list[float]] = {b: [] for b in budgets}
    for s in soft_labels_16:
        k = round(float(s) * pool)
        order = rng.permutation(np.array([1] * k + [0] * (pool - k)))
        for b in budgets:
            out[b].append(abs(float(order[:b].mean()) - k / pool))
    return out

"""Cost ledger: what each pipeline stage spent, in calls, tokens, rollouts, seconds and dollars.

Every stage that calls a model writes per-row cost columns (:data:`physio_ray.schemas.COST_COLUMNS`)
into its own Parquet; the ledger sums them per stage. Dollars come from two sources:

* API-priced stages (a non-zero price in ``ExportConfig.price_per_mtok_in`` or ``_out`` for
  the stage's name): tokens times the per-million-token prices.
* self-hosted stages (all others, including a stage priced at 0 $/Mtok because it runs on
  our own vLLM server): model seconds times ``price_per_gpu_hour``.

The projection scales per-solution figures to ``ExportConfig.projection_solutions`` (seed:
40,000) on the cluster path, under assumptions listed in :attr:`Projection.assumptions`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from physio_ray import schemas as S
from physio_ray.annotate.config import ExportConfig
from physio_ray.annotate.export import write_json_atomic

__all__ = ["CostLedger", "Projection", "StageCost", "annotation_mix"]


@dataclass(frozen=True)
class StageCost:
    """Totals of one stage.

    Attributes:
        stage: stage name (Parquet folder).
        rows: rows in the stage output (errors included: their cost was spent).
        calls, tokens_in, tokens_out, rollouts: summed cost columns.
        seconds: summed model seconds.
        api_priced: whether token prices are configured for this stage.
        usd: dollars: token cost if ``api_priced``, else ``seconds`` at the GPU-hour price.
    """

    stage: str
    rows: int
    calls: int
    tokens_in: int
    tokens_out: int
    rollouts: int
    seconds: float
    api_priced: bool
    usd: float


@dataclass(frozen=True)
class Projection:
    """Costs scaled to a cluster run of ``solutions`` solutions.

    Attributes:
        solutions: projected number of solutions.
        scale: ``solutions / measured solutions``.
        gpu_speedup: measured model seconds are divided by this on the cluster.
        stages: per stage: calls, tokens, rollouts, ``gpu_hours``, ``usd``.
        total_usd: sum over stages.
        assumptions: what the numbers rest on, in words.
    """

    solutions: int
    scale: float
    gpu_speedup: float
    stages: list[dict[str, Any]] = field(default_factory=list)
    total_usd: float = 0.0
    assumptions: list[str] = field(default_factory=list)


def _sum(frame: pd.DataFrame, col: str) -> float:
    if col not in frame.columns:
        return 0.0
    return float(pd.to_numeric(frame[col], errors="coerce").fillna(0).sum())


def annotation_mix(annotated: pd.DataFrame) -> dict[str, float]:
    """How the annotated stage labelled its steps.

    Args:
        annotated: annotated-stage rows with ``annotation_method`` (and ``mc_rollouts``).

    Returns:
        ``{"steps", "measurement", "rag", "mc", "mc_reuse", "solution", "mc_share",
        "rollouts_per_mc_step"}``;
        ``mc_share`` counts every step that needed MC (``mc``, ``mc_reuse``, ``solution``).
    """
    counts = {"measurement": 0, "rag": 0, "mc": 0, "mc_reuse": 0, "solution": 0}
    rollouts = 0
    for methods, used in zip(
        annotated.get(S.ANNOTATION_METHOD, pd.Series(dtype=object)),
        annotated.get(S.MC_ROLLOUTS, pd.Series([None] * len(annotated), dtype=object)),
        strict=False,
    ):
        for m in methods if methods is not None else []:
            key = "mc" if str(m).startswith("mc_") and m != "mc_reuse" else str(m)
            if key in counts:
                counts[key] += 1
        rollouts += int(sum(used)) if used is not None else 0
    steps = sum(counts.values())
    sent = counts["mc"] + counts["mc_reuse"] + counts["solution"]
    return {
        "steps": steps,
        **counts,
        "mc_share": sent / steps if steps else 0.0,
        "rollouts_per_mc_step": rollouts / sent if sent else 0.0,
    }


class CostLedger:
    """Per-stage cost totals of one run, with a cluster projection.

    Args:
        stages: per-stage totals.
        cfg: prices and projection size.
        n_solutions: solutions the measured run produced (the unit of scaling).
        mix: optional :func:`annotation_mix` of the annotated stage.
    """

    def __init__(
        self,
        stages: list[StageCost],
        cfg: ExportConfig,
        n_solutions: int,
        mix: dict[str, float] | None = None,
    ) -> None:
        self.stages = stages
        self.cfg = cfg
        self.n_solutions = n_solutions
        self.mix = mix

    @classmethod
    def from_stage_frames(
        cls, frames: Mapping[str, pd.DataFrame], cfg: ExportConfig | None = None, *, n_solutions: int | None = None
    ) -> CostLedger:
        """Sums each stage's cost columns.

        Args:
            frames: stage name -> that stage's rows; stages without any cost column are skipped.
            cfg: prices; default :class:`ExportConfig` (no token prices).
            n_solutions: measured solutions; default: rows of ``solutions``, else ``annotated``,
                else ``judged``.

        Returns:
            The ledger.
        """
        cfg = cfg or ExportConfig()
        stages = []
        for name, frame in frames.items():
            if not any(c in frame.columns for c in S.COST_COLUMNS):
                continue
            t_in, t_out, secs = (
                _sum(frame, S.COST_TOKENS_IN),
                _sum(frame, S.COST_TOKENS_OUT),
                _sum(frame, S.COST_SECONDS),
            )
            api = cfg.price_per_mtok_in.get(name, 0.0) > 0 or cfg.price_per_mtok_out.get(name, 0.0) > 0
            usd = (
                t_in / 1e6 * cfg.price_per_mtok_in.get(name, 0.0) + t_out / 1e6 * cfg.price_per_mtok_out.get(name, 0.0)
                if api
                else secs / 3600.0 * cfg.price_per_gpu_hour
            )
            stages.append(
                StageCost(
                    stage=name,
                    rows=len(frame),
                    calls=int(_sum(frame, S.COST_CALLS)),
                    tokens_in=int(t_in),
                    tokens_out=int(t_out),
                    rollouts=int(_sum(frame, S.COST_ROLLOUTS)),
                    seconds=secs,
                    api_priced=api,
                    usd=usd,
                )
            )
        if n_solutions is None:
            n_solutions = next((len(frames[k]) for k in ("solutions", "annotated", "judged") if k in frames), 0)
        mix = annotation_mix(frames["annotated"]) if "annotated" in frames else None
        return cls(stages, cfg, n_solutions, mix)

    @property
    def total_usd(self) -> float:
        """Dollars over all stages."""
        return sum(s.usd for s in self.stages)

    def projection(self, solutions: int | None = None, *, gpu_speedup: float = 1.0) -> Projection:
        """Scales per-solution figures to a cluster run.

        Args:
            solutions: projected solutions (default ``cfg.projection_solutions``).
            gpu_speedup: how many times faster the cluster's GPUs do one solution's model work
                than the measured run (1.0: no speedup, the conservative default).

        Returns:
            A :class:`Projection` (empty stages when nothing was measured).

        Raises:
            ValueError: when ``gpu_speedup`` is not positive.
        """
        if gpu_speedup <= 0:
            raise ValueError(f"gpu_speedup={gpu_speedup} must be > 0")
        n = int(solutions if solutions is not None else self.cfg.projection_solutions)
        scale = n / self.n_solutions if self.n_solutions else 0.0
        rows: list[dict[str, Any]] = []
        for s in self.stages:
            gpu_hours = 0.0 if s.api_priced else s.seconds * scale / gpu_speedup / 3600.0
            usd = s.usd * scale if s.api_priced else gpu_hours * self.cfg.price_per_gpu_hour
            rows.append(
                {
                    "stage": s.stage,
                    "calls": round(s.calls * scale),
                    "tokens_in": round(s.tokens_in * scale),
                    "tokens_out": round(s.tokens_out * scale),
                    "rollouts": round(s.rollouts * scale),
                    "gpu_hours": gpu_hours,
                    "usd": usd,
                }
            )
        assumptions = [
            f"per-solution calls, tokens and rollouts of the measured run ({self.n_solutions} solutions) "
            f"scale linearly to {n} (x{scale:.1f}); per-question stages keep the measured solutions-per-question ratio",
            "the share of steps sent to Monte-Carlo and rollouts per MC step stay as measured"
            + (
                f" ({self.mix['mc_share']:.1%} of steps, {self.mix['rollouts_per_mc_step']:.1f} rollouts each)"
                if self.mix
                else ""
            ),
            f"self-hosted stages: measured model seconds / {gpu_speedup:g} (GPU speedup) at "
            f"${self.cfg.price_per_gpu_hour:g}/GPU-hour, with full GPU utilisation and no idle or startup time",
            "API-priced stages: the same tokens per solution at the configured $/Mtok; cluster models "
            "may write longer or shorter outputs than the measured one",
        ]
        return Projection(n, scale, gpu_speedup, rows, sum(r["usd"] for r in rows), assumptions)

    def to_dict(self, *, gpu_speedup: float = 1.0) -> dict[str, Any]:
        """Measured totals, annotation mix and projection as plain data."""
        return {
            "solutions": self.n_solutions,
            "stages": [asdict(s) for s in self.stages],
            "total_usd": self.total_usd,
            "annotation_mix": self.mix,
            "projection": asdict(self.projection(gpu_speedup=gpu_speedup)),
        }

    def to_json(self, path: str | Path, *, gpu_speedup: float = 1.0) -> Path:
        """Writes :meth:`to_dict` atomically."""
        return write_json_atomic(self.to_dict(gpu_speedup=gpu_speedup), path)

    def render(self, *, gpu_speedup: float = 1.0) -> str:
        """A fixed-width text table of the measured run and the projection."""
        head = f"{'stage':<12}{'rows':>7}{'calls':>8}{'tok_in':>11}{'tok_out':>10}{'rollouts':>10}{'seconds':>10}{'$':>10}  basis"
        lines = [f"Cost ledger: {self.n_solutions} solutions", head, "-" * len(head)]
        for s in self.stages:
            basis = "tokens" if s.api_priced else "gpu-h"
            lines.append(
                f"{s.stage:<12}{s.rows:>7}{s.calls:>8}{s.tokens_in:>11}{s.tokens_out:>10}"
                f"{s.rollouts:>10}{s.seconds:>10.1f}{s.usd:>10.4f}  {basis}"
            )
        lines.append(f"{'total':<68}{self.total_usd:>10.4f}")
        if self.mix:
            m = self.mix
            lines.append(
                f"annotation: {int(m['steps'])} steps: rag {int(m['rag'])}, mc {int(m['mc'])}, "
                f"mc_reuse {int(m['mc_reuse'])}, solution {int(m['solution'])} "
                f"(MC share {m['mc_share']:.1%}, {m['rollouts_per_mc_step']:.2f} rollouts per MC step)"
            )
        p = self.projection(gpu_speedup=gpu_speedup)
        lines += ["", f"Projection to {p.solutions} solutions (x{p.scale:.1f}, GPU speedup {p.gpu_speedup:g}):"]
        lines.append(f"{'stage':<12}{'calls':>12}{'tok_in':>14}{'tok_out':>14}{'rollouts':>12}{'gpu_h':>10}{'$':>12}")
        for r in p.stages:
            lines.append(
                f"{r['stage']:<12}{r['calls']:>12}{r['tokens_in']:>14}{r['tokens_out']:>14}"
                f"{r['rollouts']:>12}{r['gpu_hours']:>10.2f}{r['usd']:>12.2f}"
            )
        lines.append(f"{'total':<74}{p.total_usd:>12.2f}")
        lines += ["assumptions:", *(f"  - {a}" for a in p.assumptions)]
        return "\n".join(lines)

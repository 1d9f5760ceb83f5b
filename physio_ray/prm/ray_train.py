"""PRM training on Ray Train: ``TorchTrainer`` over :func:`physio_ray.prm.loop.fit_prm`.

The driver loads and splits the data once (leakage-free, see :mod:`physio_ray.prm.sources`)
and ships the splits to the workers; every worker builds the PRM, trains on its shard with
gradients averaged over ranks (gloo on CPU, NCCL on GPU) and rank 0 checkpoints every K
steps through ``ray.train.report``. ``RunConfig(name, storage_path)`` makes a rerun of the
same name resume from the latest checkpoint; ``FailureConfig(max_failures)`` restarts a
worker group that lost a worker from that checkpoint too.

Outputs under ``output_dir``: ``prm/`` (the final checkpoint, loadable by
:class:`physio_ray.prm.scoring.PRMScorer` and the Serve app), ``metrics.json`` (held-out
step AUC of the trained PRM, of the untrained PRM and of a constant predictor, loss
history, data report) and ``loss.png``.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from physio_ray.figures import save_figure
from physio_ray.prm.bestofn import write_report
from physio_ray.prm.config import TrainPRMConfig
from physio_ray.prm.crossval import position_baselines
from physio_ray.prm.sources import load_dataset
from physio_ray.train_runtime import apply_torch_threads, build_torch_trainer

logger = logging.getLogger(__name__)


class RayTrainReporter:
    """:class:`physio_ray.prm.loop.Reporter` backed by the Ray Train worker context."""

    def __init__(self) -> None:
        import ray.train

        ctx = ray.train.get_context()
        self.rank = ctx.get_world_rank()
        self.world_size = ctx.get_world_size()

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        """Reports metrics (and rank 0's checkpoint folder) to Ray Train."""
        import ray.train

        ckpt = ray.train.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        ray.train.report(metrics, checkpoint=ckpt)

    def latest_checkpoint(self) -> str | None:
        """The checkpoint Ray Train restored (rerun of the same run name, or a worker restart)."""
        import ray.train

        ckpt = ray.train.get_checkpoint()
        if ckpt is None:
            return None
        return ckpt.to_directory()


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Ray Train entry point: ``config`` holds the job config and the three splits."""
    import torch

    from physio_ray.prm.loop import fit_prm

    cfg: TrainPRMConfig = config["cfg"]
    apply_torch_threads(cfg.scaling)
    if cfg.scaling.use_gpu:
        import ray.train.torch

        device = ray.train.torch.get_device()
    else:
        device = torch.device("cpu")
    fit_prm(cfg, config["train"], config["val"], config["test"], RayTrainReporter(), device)


@dataclass
class TrainSummary:
    """What a PRM training run produced.

    Attributes:
        output_dir: the job's output folder.
        checkpoint: exported final checkpoint folder (``None`` when training stopped early).
        metrics: final metrics reported by rank 0.
        data: data counts per split and source.
        seconds: wall time of ``fit``.
    """

    output_dir: str
    checkpoint: str | None
    metrics: dict[str, Any]
    data: dict[str, Any]
    seconds: float

    def render(self) -> str:
        """A few human lines for the job's stdout."""
        m = self.metrics
        lines = [f"PRM training: {self.data['examples']} examples, {self.data['labelled_steps']} labelled steps"]
        if m.get("stopped"):
            lines.append(f"STOPPED: {m.get('message')}")
        lines.append(f"steps {m.get('step')} in {self.seconds:.0f} s; last loss {m.get('loss', math.nan):.4f}")
        lines.append(
            "held-out step AUC: trained {:.3f} | untrained PRM {:.3f} | step position {:.3f} | position + last step "
            "{:.3f} | constant 0.500 ({} steps)".format(
                _num(m.get("test_step_auc")),
                _num(m.get("baseline_test_step_auc")),
                _num(m.get("position_baseline_test_step_auc")),
                _num(m.get("position_last_baseline_test_step_auc")),
                m.get("test_labelled_steps", 0),
            )
        )
        lines.append(f"checkpoint: {self.checkpoint}")
        lines.append(f"report:     {Path(self.output_dir) / 'metrics.json'}")
        return "\n".join(lines)


def _num(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and v is not None else math.nan


def run_train_prm(cfg: TrainPRMConfig) -> TrainSummary:
    """Loads data, trains on Ray Train, exports the checkpoint and writes the report.

    Args:
        cfg: the job config. Ray must be initialised.

    Returns:
        The summary (also written as ``metrics.json``).

    Raises:
        FloatingPointError: when the loss became non-finite (message names the step).
    """
    ds = load_dataset(cfg.data)
    data = ds.summary()
    loop_config = {"cfg": cfg, "train": ds.train, "val": ds.val, "test": ds.test}
    trainer = build_torch_trainer(train_loop_per_worker, loop_config, cfg.scaling, cfg.run, output_dir=cfg.output_dir)
    start = time.perf_counter()
    result = trainer.fit()
    seconds = time.perf_counter() - start
    metrics = dict(result.metrics or {})
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    exported = None
    if result.checkpoint is not None and not metrics.get("stopped"):
        exported = out / "prm"
        if exported.exists():
            shutil.rmtree(exported)
        with result.checkpoint.as_directory() as ckpt:
            shutil.copytree(ckpt, exported)
    # the shortcut the labels allow: zeroed after the first error, later steps are more often wrong
    for name, auc in position_baselines(ds.train, ds.test).items():
        metrics[f"{name}_baseline_test_step_auc"] = auc
    summary = TrainSummary(str(out), str(exported) if exported else None, metrics, data, seconds)
    write_report(
        {
            "metrics": {k: v for k, v in metrics.items() if k != "history"},
            "constant_predictor_step_auc": 0.5,
            "data": data,
            "checkpoint": summary.checkpoint,
            "ray_checkpoint": result.checkpoint.path if result.checkpoint is not None else None,
            "seconds": seconds,
            "history": metrics.get("history", []),
        },
        str(out / "metrics.json"),
    )
    if metrics.get("history"):
        plot_history(metrics["history"], str(out / "loss.png"))
    if metrics.get("stopped"):
        raise FloatingPointError(str(metrics.get("message")))
    return summary


def plot_history(history: list[list[float]], path: str) -> None:
    """Writes a PNG of the training loss per optimiser step."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 3.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([h[0] for h in history], [h[1] for h in history], marker=".")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("PRM loss (rank 0 shard)")
    ax.grid(alpha=0.3)
    save_figure(fig, path, dpi=110)

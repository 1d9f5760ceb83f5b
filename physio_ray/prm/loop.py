"""The PRM training loop, independent of Ray: sharding, accumulation, gradient sync, resume.

:func:`fit_prm` is what every Ray Train worker runs (see :mod:`physio_ray.prm.ray_train`);
it talks to the outside only through a :class:`Reporter`, so tests drive it in-process
with a fake one. With ``world_size > 1`` it needs an initialised ``torch.distributed``
process group (Ray Train sets one up): gradients of every trainable parameter are averaged
with ``all_reduce`` (no DDP wrapper, so unused branches such as the fusion layer on a
text-only batch are fine), and a non-finite loss on any rank stops every rank at the same
step with a message naming it.
"""

from __future__ import annotations

import logging
import math
import random
import tempfile
import time
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch

from physio_ray.prm.checkpoint import load_checkpoint, save_checkpoint
from physio_ray.prm.config import TrainPRMConfig
from physio_ray.prm.data import PRMExample
from physio_ray.prm.loss import check_finite, prm_loss
from physio_ray.prm.model import PRMModel, build_prm_model, model_inputs, to_device
from physio_ray.prm.tokenize import PRMTokenizer
from physio_ray.prm.train import cache_text_hidden, evaluate, make_optimizer

logger = logging.getLogger(__name__)


class Reporter(Protocol):
    """How the loop reports progress and finds a checkpoint to resume from."""

    rank: int
    world_size: int

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        """Called by every rank at the same steps; only rank 0 passes a checkpoint folder."""

    def latest_checkpoint(self) -> str | None:
        """A folder to resume from, or ``None`` for a fresh run."""


def shard_indices(n: int, rank: int, world: int, epoch: int, seed: int) -> list[int]:
    """This rank's example indices for one epoch: a shared shuffle, padded to a multiple of ``world``.

    Every rank gets the same count, so collective calls stay in step.

    >>> shard_indices(5, 0, 2, 0, 0), shard_indices(5, 1, 2, 0, 0)
    ([2, 0, 3], [1, 4, 2])
    """
    order = list(range(n))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    per = math.ceil(n / world)
    order = (order * (1 + per * world // max(n, 1)))[: per * world]
    return order[rank::world]


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Multiplier of the base learning rate at ``step`` (linear warm-up, then cosine or constant).

    >>> [round(lr_factor(s, 10, 2, "cosine"), 3) for s in (0, 1, 2, 6, 10)]
    [0.5, 1.0, 1.0, 0.5, 0.0]
    """
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def _distributed(world: int) -> bool:
    return world > 1 and torch.distributed.is_available() and torch.distributed.is_initialized()


def sync_gradients(params: Sequence[torch.nn.Parameter], world: int) -> None:
    """Averages gradients over ranks (a missing gradient counts as zeros)."""
    if not _distributed(world):
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    for p, g in zip(params, grads, strict=True):
        p.grad = g
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch.distributed.all_reduce(flat)
    flat /= world
    offset = 0
    for p, g in zip(params, grads, strict=True):
        k = p.numel()
        g.copy_(flat[offset : offset + k].view_as(p))
        offset += k


def all_finite(value: float, world: int, device: torch.device) -> bool:
    """True when ``value`` is finite on every rank."""
    ok = torch.tensor([1.0 if math.isfinite(value) else 0.0], device=device)
    if _distributed(world):
        torch.distributed.all_reduce(ok, op=torch.distributed.ReduceOp.MIN)
    return bool(ok.item() > 0)


def _batches(prm_tok: PRMTokenizer, encoded: list[Any], idx: list[int], size: int) -> list[dict[str, Any]]:
    return [prm_tok.collate([encoded[i] for i in idx[s : s + size]]) for s in range(0, len(idx), size)]


def _cached_hidden(
    model: PRMModel, encoded: list[Any], chunk: list[int], cache: dict[int, torch.Tensor], length: int, device: Any
) -> torch.Tensor:
    """Frozen-tower hidden states ``[B, length, H]`` of a batch, each example encoded once."""
    rows = []
    for i in chunk:
        if i not in cache:
            ids = torch.as_tensor(encoded[i].input_ids, device=device)[None]
            cache[i] = model.encode_text(ids, torch.ones_like(ids))[0]
        h = cache[i]
        rows.append(torch.nn.functional.pad(h, (0, 0, 0, length - h.shape[0])))
    return torch.stack(rows)


def fit_prm(
    cfg: TrainPRMConfig,
    train: Sequence[PRMExample],
    val: Sequence[PRMExample],
    test: Sequence[PRMExample],
    reporter: Reporter,
    device: torch.device | str = "cpu",
    built: tuple[PRMModel, PRMTokenizer] | None = None,
) -> dict[str, Any]:
    """Trains the PRM on this rank's shard, checkpointing every ``run.checkpoint_every`` steps.

    Args:
        cfg: the job config (model, prompt, optim, train, run).
        train: all training examples (this rank takes its shard per epoch).
        val: validation examples (evaluated by rank 0 every ``train.eval_every`` steps).
        test: held-out examples (rank 0 reports their step AUC before and after training).
        reporter: progress / checkpoint sink (Ray Train's in workers).
        device: torch device of this rank.
        built: an already built ``(model, tokenizer)`` (tests); built from ``cfg`` otherwise.

    Returns:
        The final metrics (also reported): ``step``, ``loss``, ``test_*``, ``baseline_test_*``,
        ``val_*``, ``history`` (``[step, loss, grad_norm, seconds]`` per optimiser step); ``stopped`` = ``"nan"`` with ``message`` naming the step when
        the loss became non-finite.
    """
    t = cfg.train
    torch.manual_seed(t.seed)
    model, prm_tok = built or build_prm_model(cfg.model, cfg.prompt)
    model.to(device)
    optimizer = make_optimizer(model, cfg.optim)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    params = [p for g in optimizer.param_groups for p in g["params"]]
    rank, world = reporter.rank, reporter.world_size

    encoded = prm_tok.encode_many(train)
    if not encoded:
        raise ValueError("no training example could be encoded (see warnings)")
    per_rank = math.ceil(len(encoded) / world)
    micro_per_epoch = math.ceil(per_rank / t.batch_size)
    steps_per_epoch = max(1, micro_per_epoch // t.grad_accum)
    total = t.max_steps if t.max_steps is not None else t.epochs * steps_per_epoch

    state: dict[str, Any] = {"step": 0, "history": []}
    resume = reporter.latest_checkpoint()
    if resume:
        model_state, state = load_checkpoint(resume)
        model.load_trainable_state_dict(model_state)
        optimizer.load_state_dict(state["optimizer"])
        logger.info("rank %d resumed from %s at step %d", rank, resume, state["step"])
    frozen = model.text_mode == "frozen" and t.cache_text_hidden
    test_batches = _batches(prm_tok, prm_tok.encode_many(test), list(range(len(test))), t.batch_size)
    val_batches = _batches(prm_tok, prm_tok.encode_many(val), list(range(len(val))), t.batch_size)
    if frozen:
        test_batches = cache_text_hidden(model, test_batches) if rank == 0 else []
        val_batches = cache_text_hidden(model, val_batches) if rank == 0 else []
    if rank == 0 and "baseline_test" not in state:
        state["baseline_test"] = evaluate(model, test_batches) if test_batches else {}
    cache: dict[int, torch.Tensor] = {}

    step = int(state["step"])
    running: list[float] = []
    result: dict[str, Any] = {}
    while step < total:
        epoch, within = divmod(step, steps_per_epoch)
        idx = shard_indices(len(encoded), rank, world, epoch, t.seed)
        micro = [idx[s : s + t.batch_size] for s in range(0, len(idx), t.batch_size)]
        for k in range(within, steps_per_epoch):
            if step >= total:
                break
            model.train()
            tick = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            step_loss = 0.0
            for chunk in micro[k * t.grad_accum : (k + 1) * t.grad_accum]:
                batch = to_device(prm_tok.collate([encoded[i] for i in chunk]), device)
                if frozen:
                    batch["text_hidden"] = _cached_hidden(
                        model, encoded, chunk, cache, batch["input_ids"].shape[1], device
                    )
                loss = prm_loss(model(**model_inputs(batch)), batch["labels"]) / t.grad_accum
                if not all_finite(float(loss.detach()), world, torch.device(device)):
                    msg = f"PRM loss became non-finite at training step {step + 1} (rank {rank}: {float(loss.detach()):.4g})"
                    try:
                        check_finite(loss, step + 1, batch["solution_ids"])
                    except FloatingPointError as exc:
                        msg = str(exc)
                    logger.error(msg)
                    result = {"step": step, "stopped": "nan", "message": msg, "history": state["history"]}
                    reporter.report(result, None)
                    return result
                loss.backward()
                step_loss += float(loss.detach())
            sync_gradients(params, world)
            norm = torch.nn.utils.clip_grad_norm_(params, cfg.optim.clip if cfg.optim.clip > 0 else math.inf)
            for g, base in zip(optimizer.param_groups, base_lrs, strict=False):
                g["lr"] = base * lr_factor(step, total, t.warmup_steps, t.schedule)
            optimizer.step()
            step += 1
            running.append(step_loss)
            state["history"].append([step, step_loss, float(norm), time.perf_counter() - tick])
            last = step >= total
            if step % cfg.run.checkpoint_every == 0 or last:
                result = _checkpoint(
                    cfg, model, optimizer, state, step, running, reporter, val_batches, test_batches, last
                )
                running = []
            elif t.eval_every and step % t.eval_every == 0 and rank == 0:
                logger.info("step %d val %s", step, evaluate(model, val_batches))
    if not result:  # resumed at or past max_steps: nothing left to train
        result = _checkpoint(cfg, model, optimizer, state, step, running, reporter, val_batches, test_batches, True)
    return result


def _checkpoint(
    cfg: TrainPRMConfig,
    model: PRMModel,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    step: int,
    running: list[float],
    reporter: Reporter,
    val_batches: list[dict[str, Any]],
    test_batches: list[dict[str, Any]],
    final: bool,
) -> dict[str, Any]:
    state["step"] = step
    metrics: dict[str, Any] = {"step": step, "loss": float(np.mean(running)) if running else math.nan}
    if reporter.rank != 0:
        reporter.report(metrics, None)
        return metrics
    if val_batches and (final or cfg.train.eval_every):
        metrics.update({f"val_{k}": v for k, v in evaluate(model, val_batches).items()})
    if final:
        metrics.update({f"test_{k}": v for k, v in evaluate(model, test_batches).items()} if test_batches else {})
        metrics.update({f"baseline_test_{k}": v for k, v in state.get("baseline_test", {}).items()})
        metrics["history"] = state["history"]
    state["optimizer"] = optimizer.state_dict()
    with tempfile.TemporaryDirectory(prefix="prm-ckpt-") as tmp:
        save_checkpoint(tmp, model.trainable_state_dict(), cfg.model, cfg.prompt, state)
        logger.info("step %d: %s", step, {k: v for k, v in metrics.items() if k != "history"})
        reporter.report(metrics, tmp)
    return metrics

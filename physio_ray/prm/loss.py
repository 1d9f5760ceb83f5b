"""Med-PRM's step loss: cross-entropy over the (+, -) logits at labelled marker positions.

For a step with target ``y`` in [0, 1] (hard 0/1 or a soft MC fraction) and logits
``(z+, z-)`` the loss is ``-(y log p+ + (1 - y) log p-)`` with ``(p+, p-) = softmax(z+, z-)``,
averaged over labelled steps (seed 000 §3.3.2). Unlike the seed's sketch it is computed in
float32 (bfloat16 rounding of soft targets and logits biases the loss) and positions whose
label is ``IGNORE`` (-100) are masked out. The logits are read at the marker itself (what
the LM would write next after the marker), as Med-PRM's scorer does, so there is no shift.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from physio_ray.prm.tokenize import IGNORE


def prm_loss(pm_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean soft cross-entropy over labelled positions.

    Args:
        pm_logits: ``[..., 2]`` (+, -) logits (any float dtype).
        labels: ``[...]`` targets in [0, 1], ``IGNORE`` where there is none.

    Returns:
        float32 scalar; 0 (still attached to the graph) when nothing is labelled.

    Raises:
        ValueError: when shapes disagree or a target lies outside [0, 1].

    >>> z = torch.tensor([[2.0, 0.0], [0.0, 0.0], [5.0, 1.0]])
    >>> round(prm_loss(z, torch.tensor([1.0, 0.25, IGNORE])).item(), 6)  # (log(1+e^-2) + log 2) / 2
    0.410038
    """
    if pm_logits.shape[:-1] != labels.shape or pm_logits.shape[-1] != 2:
        raise ValueError(f"pm_logits {tuple(pm_logits.shape)} must be labels {tuple(labels.shape)} + (2,)")
    mask = labels != IGNORE
    if not bool(mask.any()):
        return pm_logits.float().sum() * 0.0
    logits = pm_logits[mask].float()
    target = labels[mask].float()
    if bool(((target < 0) | (target > 1)).any()):
        raise ValueError(f"step targets must lie in [0, 1], got {target[(target < 0) | (target > 1)].tolist()[:5]}")
    return F.cross_entropy(logits, torch.stack([target, 1.0 - target], dim=-1))


def check_finite(loss: torch.Tensor, step: int | None, solution_ids: Sequence[str] = ()) -> None:
    """Raises when the loss is NaN or infinite, naming the training step and the batch.

    Raises:
        FloatingPointError: on a non-finite loss.
    """
    value = float(loss.detach())
    if not math.isfinite(value):
        where = f"training step {step}" if step is not None else "an unnumbered step"
        ids = f" (batch: {', '.join(list(solution_ids)[:8])})" if solution_ids else ""
        raise FloatingPointError(
            f"PRM loss is {value} at {where}{ids}; check the learning rate, the text tower dtype "
            "(use float32 or bfloat16, not float16) and NaN vision features"
        )

"""Step scores P(+) from the PRM and a batch scorer.

A step's score is ``P(+) = softmax(z+, z-)[0]`` at its marker; a solution's score
aggregates them (:func:`physio_ray.prm.metrics.aggregate`: min, mean, last or product).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from physio_ray import schemas as S
from physio_ray.prm.metrics import AGGREGATIONS, aggregate

if TYPE_CHECKING:
    import torch

    from physio_ray.prm.config import PRMModelConfig, PromptConfig
    from physio_ray.prm.data import PRMExample
    from physio_ray.prm.model import PRMModel
    from physio_ray.prm.tokenize import PRMTokenizer

logger = logging.getLogger(__name__)

STEP_SCORES = "step_scores"  # list[float]: P(+) per step (column added by PRMScorer)
PRM_SCORE = "prm_score"  # float: aggregated solution score (column added by PRMScorer)


def step_probabilities(pm_logits: torch.Tensor, step_index: torch.Tensor) -> list[np.ndarray]:
    """P(+) at each marker, per example, in step order.

    Args:
        pm_logits: ``[B, L, 2]`` (+, -) logits.
        step_index: int64 ``[B, L]``: step number at marker positions, -1 elsewhere.

    Returns:
        ``B`` float arrays ``[n_steps_i]``.
    """
    import torch

    p_plus = torch.softmax(pm_logits.float(), dim=-1)[..., 0].detach().cpu().numpy()
    idx = step_index.detach().cpu().numpy()
    out = []
    for b in range(idx.shape[0]):
        pos = np.nonzero(idx[b] >= 0)[0]
        order = pos[np.argsort(idx[b, pos], kind="stable")]
        out.append(p_plus[b, order].astype(np.float64))
    return out


def score_examples(
    model: PRMModel,
    prm_tok: PRMTokenizer,
    examples: Sequence[PRMExample],
    batch_size: int = 4,
    share_prefix: bool = True,
) -> list[np.ndarray | None]:
    """Step scores for examples (``None`` for an example that cannot be encoded).

    Args:
        model, prm_tok: the PRM and its tokenizer.
        examples: the solutions to score.
        batch_size: solutions per forward pass.
        share_prefix: within a forward pass, run the prompt prefix that solutions share (one
            question's candidates: system prompt, question with its evidence, options) once
            (:mod:`physio_ray.prm.prefix`); the scores are the same up to float rounding
            (within 1e-5 in float32; a bf16 tower rounds more, so a score may move with its batch).

    Returns:
        One array ``[n_steps]`` per example (shorter when steps were truncated away).
    """
    import torch

    from physio_ray.prm.model import model_inputs, to_device

    model.eval()
    device = next(model.parameters()).device
    out: list[np.ndarray | None] = [None] * len(examples)
    encoded = []
    for i, ex in enumerate(examples):
        try:
            encoded.append((i, prm_tok.encode(ex)))
        except ValueError as exc:
            logger.warning("cannot score %s: %s", ex.solution_id, exc)
    with torch.no_grad():
        for start in range(0, len(encoded), batch_size):
            chunk = encoded[start : start + batch_size]
            batch = to_device(prm_tok.collate([e for _, e in chunk]), device)
            probs = step_probabilities(model(**model_inputs(batch), share_prefix=share_prefix), batch["step_index"])
            for (i, _), p in zip(chunk, probs, strict=False):
                out[i] = p
    return out


class PRMScorer:
    """Scores solutions in Ray Data batches (``map_batches`` with ``batch_format="numpy"``).

    Reads ``question_id``, ``question``, ``options``, ``steps`` (and optionally
    ``solution_id``, ``vision``); adds ``step_scores`` (list[float]), ``prm_score`` (float)
    and ``error``. A row that fails keeps flowing with ``error`` set.

    Args:
        model_cfg: the PRM architecture (loads the text tower named there); replaced by the
            config saved in a checkpoint folder.
        checkpoint: a checkpoint folder (``<train output_dir>/prm``, see
            :mod:`physio_ray.prm.checkpoint`) or a file saved with
            ``torch.save(model.trainable_state_dict())``; ``None`` scores with the untrained
            PRM (the text LM's own preference).
        prompt: prompt settings (replaced by the checkpoint's, which match training).
        aggregation: how ``prm_score`` aggregates the step scores.
        batch_size: solutions per forward pass.
        device: torch device (``None``: CUDA when available).
    """

    def __init__(
        self,
        model_cfg: PRMModelConfig | None = None,
        checkpoint: str | None = None,
        prompt: PromptConfig | None = None,
        aggregation: str = "min",
        batch_size: int = 4,
        device: str | None = None,
    ) -> None:
        import torch

        from physio_ray.prm.model import build_prm_model

        if aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation {aggregation!r} is not one of {AGGREGATIONS}")
        from physio_ray.prm.checkpoint import load_checkpoint, load_checkpoint_config
        from physio_ray.prm.config import PRMModelConfig

        state = None
        if checkpoint and Path(checkpoint).is_dir():
            saved = load_checkpoint_config(checkpoint)
            if saved is not None:
                model_cfg, prompt = saved
            state, _ = load_checkpoint(checkpoint)
        elif checkpoint:
            state = torch.load(checkpoint, map_location="cpu")
        self.model_cfg = model_cfg or PRMModelConfig()
        self.model, self.prm_tok = build_prm_model(self.model_cfg, prompt)
        if state is not None:
            self.model.load_trainable_state_dict(state)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device).eval()
        self.aggregation = aggregation
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Adds ``step_scores``, ``prm_score`` and ``error`` to a numpy batch."""
        from physio_ray.prm.data import PRMExample, normalise_steps

        n = len(batch[S.QUESTION_ID])
        scores: list[Any] = [None] * n
        # an all-null error column arrives from Arrow as float NaN: only a non-empty string is an error
        raw = list(batch[S.ERROR]) if S.ERROR in batch else [None] * n
        errors: list[str | None] = [e if isinstance(e, str) and e else None for e in raw]
        examples, rows = [], []
        for i in range(n):
            if errors[i]:
                continue
            try:
                sid = str(batch[S.SOLUTION_ID][i]) if S.SOLUTION_ID in batch else f"row-{i}"
                steps = normalise_steps([str(s) for s in batch[S.STEPS][i]], sid)
                vision = batch["vision"][i] if "vision" in batch else None
                examples.append(
                    PRMExample(
                        question_id=str(batch[S.QUESTION_ID][i]),
                        solution_id=sid,
                        question=str(batch[S.QUESTION][i]),
                        options=[str(o) for o in batch[S.OPTIONS][i]] if S.OPTIONS in batch else [],
                        steps=steps,
                        labels=[None] * len(steps),
                        vision=None if vision is None else np.asarray(vision, dtype=np.float32),
                    )
                )
                rows.append(i)
            except (KeyError, TypeError, ValueError) as exc:
                errors[i] = f"prm scorer: {exc}"
        for i, s in zip(rows, score_examples(self.model, self.prm_tok, examples, self.batch_size), strict=False):
            if s is None:
                errors[i] = "prm scorer: solution could not be encoded (no step fits in prompt.max_length)"
            else:
                scores[i] = s
        out = dict(batch)
        col = np.empty(n, dtype=object)  # filled item by item: equal lengths must not make a 2-D array
        for i, sc in enumerate(scores):
            col[i] = np.asarray(sc if sc is not None else [], dtype=np.float64)
        out[STEP_SCORES] = col
        out[PRM_SCORE] = np.array(
            [aggregate(s, self.aggregation) if s is not None else math.nan for s in scores], dtype=np.float64
        )
        out[S.ERROR] = np.array(errors, dtype=object)
        return out


@functools.lru_cache(maxsize=4)
def _cached_scorer(resolved_dir: str) -> PRMScorer:
    """One scorer per resolved checkpoint folder (the text tower loads once per process)."""
    return PRMScorer(checkpoint=resolved_dir, device="cpu")


def score_solution(
    checkpoint_dir: str | Path,
    question: str,
    options: Sequence[str],
    steps: Sequence[str],
    features: Sequence[Sequence[float]] | None = None,
) -> list[float]:
    """Step probabilities P(+) of one solution under a trained PRM.

    The model of a checkpoint folder is loaded once per process (cached on the resolved path),
    so calling this in a loop costs one forward pass per call.

    Args:
        checkpoint_dir: a PRM checkpoint folder: ``<output_dir>/prm`` of ``jobs/train_prm.py``
            (holds ``prm.pt`` and ``prm_config.json``).
        question: the question stem.
        options: the answer options as plain strings (no letter prefixes).
        steps: the solution's steps, each ending in the step marker ``" ки"``.
        features: optional keyframe pose features ``[T, 16]`` for the pose tower.

    Returns:
        One probability in [0, 1] per step, in step order; NaN for trailing steps that did
        not fit in the checkpoint's ``prompt.max_length``.

    Raises:
        FileNotFoundError: when ``checkpoint_dir`` is not a PRM checkpoint folder.
        ValueError: when the request is malformed (empty question, a step without its marker).
    """
    from physio_ray.prm.api import RequestLimits, request_example, request_problems
    from physio_ray.prm.checkpoint import WEIGHTS

    folder = Path(checkpoint_dir).expanduser().resolve()
    if not (folder / WEIGHTS).is_file():
        raise FileNotFoundError(
            f"{checkpoint_dir} is not a PRM checkpoint (no {WEIGHTS}); pass <train_prm output_dir>/prm"
        )
    steps = [str(s) for s in steps]
    limits = RequestLimits(max_steps=10_000, max_chars=10**9, max_options=64, max_keyframes=10_000, feature_dim=None)
    problems = request_problems(question, [str(o) for o in options], steps, features, limits)
    if problems:
        raise ValueError("score_solution: " + "; ".join(problems))
    scorer = _cached_scorer(str(folder))
    example = request_example(question, [str(o) for o in options], steps, features)
    (probs,) = score_examples(scorer.model, scorer.prm_tok, [example], batch_size=1)
    if probs is None:
        raise ValueError("score_solution: not even the first step fits in the checkpoint's prompt.max_length")
    out = [float(p) for p in probs]
    return out + [math.nan] * (len(steps) - len(out))

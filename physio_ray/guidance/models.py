"""The trained LSTMs of the guidance engine: exercise classifier and per-exercise quality models.

Both read the 16 shared joint angles resampled to a fixed rate
(:func:`physio_ray.video.angles.resample_angles`), so a
5 fps recording and a 60 fps camera give the model the same input. Features per step: the angle
divided by 180 (NaN -> 0) and a visibility mask, ``[steps, 32]``.

* :class:`LstmExerciseClassifier` implements the engine's ``ExerciseClassifier`` protocol. While
  the body is still (no joint group moves more than ``movement_deg`` over the window) it returns
  a uniform distribution: a standing person is evidence for no exercise in particular.
* :class:`LstmQualityModel` implements ``QualityModel``: ``quality`` is the probability that the
  execution is correct; ``confidence`` is ``max(p, 1 - p)`` scaled by the visible share.

Weights ship in ``physio_ray/guidance/weights/guidance_lstm.pt`` with ``training_report.json``;
:func:`load_guidance_models` loads them (torch is imported only there).
"""

from __future__ import annotations

import importlib.resources
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from physio_ray.guidance.rule_models import group_rom_matrix
from physio_ray.video.angles import GROUPS, N_ANGLES, angle_index

N_FEATURES = 2 * N_ANGLES
WEIGHTS_FILE = "guidance_lstm.pt"
REPORT_FILE = "training_report.json"


def to_features(window: np.ndarray) -> np.ndarray:
    """``[steps, 16]`` degrees -> ``[steps, 32]`` model input (scaled angles + visibility mask)."""
    window = np.asarray(window, dtype=np.float64)
    mask = np.isfinite(window)
    return np.concatenate([np.where(mask, window / 180.0, 0.0), mask.astype(np.float64)], axis=-1).astype(np.float32)


@dataclass(frozen=True)
class ModelSpec:
    """Shape of one LSTM (stored with the weights).

    Attributes:
        hidden: LSTM hidden size.
        layers: LSTM layers.
        outputs: output units (classes, or 1 for a quality model).
        window_s: input window length in seconds.
        sample_hz: input rate.
    """

    hidden: int
    layers: int
    outputs: int
    window_s: float
    sample_hz: float

    @property
    def steps(self) -> int:
        """Input steps."""
        return int(round(self.window_s * self.sample_hz))


def build_lstm(spec: ModelSpec) -> Any:
    """A ``torch.nn.Module``: LSTM over ``[batch, steps, 32]`` -> linear head on the last state
    concatenated with the mean state over the window (the mean carries range-of-motion cues
    that the last state alone forgets on longer windows).

    Returns:
        The module; its forward returns ``[batch, outputs]`` logits.
    """
    import torch
    from torch import nn

    class AngleLSTM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(N_FEATURES, spec.hidden, num_layers=spec.layers, batch_first=True)
            self.head = nn.Linear(2 * spec.hidden, spec.outputs)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out, _ = self.lstm(x)
            return self.head(torch.cat([out[:, -1], out.mean(dim=1)], dim=-1))

    return AngleLSTM()


class _TorchRunner:
    def __init__(self, module: Any, spec: ModelSpec) -> None:
        import torch

        self._torch = torch
        self.module = module.eval()
        self.spec = spec
        self.window_s = spec.window_s
        self.sample_hz = spec.sample_hz

    def logits(self, windows: np.ndarray) -> np.ndarray:
        """``[B, steps, 16]`` degrees -> ``[B, outputs]`` logits."""
        return lstm_logits(self.module, windows)


def lstm_logits(module: Any, windows: np.ndarray) -> np.ndarray:
    """Runs an LSTM head on angle windows ``[B, steps, 16]`` (degrees): ``[B, outputs]`` logits."""
    import torch

    with torch.inference_mode():
        return module(torch.from_numpy(to_features(windows))).numpy().astype(np.float64)


class LstmExerciseClassifier(_TorchRunner):
    """The exercise classifier (engine protocol ``ExerciseClassifier``).

    Args:
        module: the trained LSTM.
        spec: its shape.
        exercises: output class names in order.
        groups: joint group -> angle columns, for the "body is still" check.
        movement_deg: below this range of motion in every group the output is uniform.
    """

    def __init__(
        self,
        module: Any,
        spec: ModelSpec,
        exercises: tuple[str, ...],
        groups: Mapping[str, np.ndarray],
        movement_deg: float = 20.0,
    ) -> None:
        super().__init__(module, spec)
        self.exercises = tuple(exercises)
        self._groups = dict(groups)
        self.movement_deg = movement_deg

    def predict_proba(self, window: np.ndarray) -> np.ndarray:
        """Class probabilities for one ``[steps, 16]`` window at ``sample_hz`` (NaN allowed).

        Returns:
            ``[n_exercises]`` summing to 1; uniform when the body is still or hidden.
        """
        return self.predict_proba_many([window])[0]

    def predict_proba_many(self, windows: Sequence[np.ndarray]) -> list[np.ndarray]:
        """:meth:`predict_proba` of several windows with one LSTM call (the batched engine's tick)."""
        n = len(self.exercises)
        out: list[np.ndarray] = [np.full(n, 1.0 / n) for _ in windows]
        arrays = [np.asarray(raw, dtype=np.float64) for raw in windows]
        usable = [i for i, w in enumerate(arrays) if w.ndim == 2 and w.shape[0] >= 3]
        run: list[int] = []
        if usable:  # the body moves: one percentile call per window length for all of them
            rom = group_rom_matrix([arrays[i] for i in usable], list(self._groups.values()))
            moving = np.where(np.isfinite(rom), rom, -np.inf).max(axis=1) >= self.movement_deg
            run = [i for i, m in zip(usable, moving, strict=True) if m]
        if run:
            z = self.logits(
                np.stack([_fit_steps(np.asarray(windows[i], dtype=np.float64), self.spec.steps) for i in run])
            )
            for row, i in zip(z, run, strict=True):
                p = np.exp(row - row.max())
                out[i] = p / p.sum()
        return out


class LstmQualityModel(_TorchRunner):
    """Correct-vs-incorrect execution of one exercise (engine protocol ``QualityModel``)."""

    def score(self, window: np.ndarray) -> tuple[float, float]:
        """Scores one ``[steps, 16]`` window at ``sample_hz``.

        Returns:
            ``(p_correct, confidence)`` in 0..1; ``(nan, 0.0)`` when nothing is visible.
        """
        return self.score_many([window])[0]

    def score_many(self, windows: Sequence[np.ndarray]) -> list[tuple[float, float]]:
        """:meth:`score` of several windows with one LSTM call (the batched engine's tick)."""
        out: list[tuple[float, float]] = [(float("nan"), 0.0) for _ in windows]
        run: list[tuple[int, np.ndarray, float]] = []
        for i, raw in enumerate(windows):
            window = np.asarray(raw, dtype=np.float64)
            visible = np.isfinite(window).any(axis=-1)
            if window.ndim == 2 and visible.sum() >= 3:
                run.append((i, window, float(visible.mean())))
        if run:
            z = self.logits(np.stack([_fit_steps(w, self.spec.steps) for _, w, _ in run]))[:, 0]
            for zi, (i, _, seen) in zip(z, run, strict=True):
                p = 1.0 / (1.0 + math.exp(-float(zi)))
                out[i] = (p, float(max(p, 1.0 - p) * seen))
        return out


def _fit_steps(window: np.ndarray, steps: int) -> np.ndarray:
    """Pads (NaN, in front) or crops (oldest rows) a window to ``steps`` rows."""
    if window.shape[0] >= steps:
        return window[-steps:]
    pad = np.full((steps - window.shape[0], window.shape[1]), np.nan)
    return np.concatenate([pad, window])


@dataclass
class GuidanceModels:
    """The loaded shipped models.

    Attributes:
        classifier: the exercise classifier.
        quality: exercise -> quality model (exercises with incorrect examples in training).
        report: the training report (held-out figures).
    """

    classifier: LstmExerciseClassifier
    quality: dict[str, LstmQualityModel]
    report: dict[str, Any]

    def quality_factory(self, exercise: str) -> Any:
        """The quality model for ``exercise``: the LSTM when trained, else the rule model."""
        from physio_ray.guidance.exercise_rules import default_quality_model

        return self.quality.get(exercise) or default_quality_model(exercise)


def weights_dir() -> Path:
    """The package folder holding the shipped weights."""
    return Path(str(importlib.resources.files("physio_ray.guidance") / "weights"))


def save_guidance_models(
    path: Path,
    classifier: Any,
    clf_spec: ModelSpec,
    exercises: tuple[str, ...],
    quality: Mapping[str, Any],
    q_spec: ModelSpec,
) -> Path:
    """Writes every model's weights and shapes to one ``.pt`` file (tensors + plain data only)."""
    import torch

    blob = {
        "classifier": {"spec": vars(clf_spec), "exercises": list(exercises), "state": classifier.state_dict()},
        "quality": {"spec": vars(q_spec), "models": {ex: m.state_dict() for ex, m in quality.items()}},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(blob, path)
    return path


def load_guidance_models(path: str | Path | None = None, movement_deg: float = 20.0) -> GuidanceModels:
    """Loads the classifier and quality LSTMs (default: the weights shipped in the package).

    Args:
        path: a ``.pt`` file written by :func:`save_guidance_models` (its folder may hold a
            ``training_report.json``).
        movement_deg: the classifier's "body is still" range of motion.

    Returns:
        The loaded :class:`GuidanceModels` (CPU, eval mode).

    Raises:
        FileNotFoundError: when the weights are missing (run ``jobs/train_guidance.py``).
    """
    import torch

    path = Path(path) if path is not None else weights_dir() / WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"guidance weights not found at {path}; train them with jobs/train_guidance.py")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    clf_spec = ModelSpec(**blob["classifier"]["spec"])
    module = build_lstm(clf_spec)
    module.load_state_dict(blob["classifier"]["state"])
    groups = {g: angle_index(names) for g, names in GROUPS.items()}
    classifier = LstmExerciseClassifier(
        module, clf_spec, tuple(blob["classifier"]["exercises"]), groups, movement_deg=movement_deg
    )
    q_spec = ModelSpec(**blob["quality"]["spec"])
    quality = {}
    for ex, state in blob["quality"]["models"].items():
        m = build_lstm(q_spec)
        m.load_state_dict(state)
        quality[ex] = LstmQualityModel(m, q_spec)
    report_path = path.parent / REPORT_FILE
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    return GuidanceModels(classifier, quality, report)

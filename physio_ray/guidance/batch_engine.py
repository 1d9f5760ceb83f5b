"""The batched session engine: one tick steps the frames of many sessions in vectorised calls.

A replica holds its sessions' state side by side; every tick (one message of the multiplexed
stream) :func:`step_frames` takes one frame per session through the same halves of the step
as :meth:`GuidanceSession.frame <physio_ray.guidance.session.GuidanceSession.frame>`, with
the per-session semantics unchanged:

1. each frame is checked on its own (:meth:`~physio_ray.guidance.session.GuidanceSession.accept_frame`):
   a bad frame gets its error in its slot and the others go on;
2. keypoints -> COCO-17 for every frame in one call; One-Euro smoothing of every session's
   points in one elementwise step (:func:`physio_ray.video.smoothing.one_euro_many`); the 16
   joint angles of every frame in one :func:`~physio_ray.video.angles.joint_angles` call;
3. the geometry behind the view-invariant cues of every frame in one call
   (:func:`~physio_ray.guidance.cue_geometry.geometry_rows`); then per session its cue smoothers and view
   (:meth:`~physio_ray.guidance.cues.ViewCues.advance`), the repetition tracker and the state
   bookkeeping (:func:`~physio_ray.guidance.session_step.begin`);
4. every classifier and quality window that is due, one model call per model
   (``predict_proba_many`` / ``score_many``: one batched LSTM forward for all sessions);
5. belief, state transition and feedback per session (:func:`~physio_ray.guidance.session_step.complete`).

A session that appears several times in one tick has its frames stepped in order, one per
round. Same inputs give the same states, repetitions and feedback as stepping each session
alone (``tests/unit/test_guidance_batch_engine.py``); the LSTM's probabilities agree to
float32 rounding (a batch of one and a batch of fifty take different BLAS paths).

Example:
    >>> from physio_ray.guidance.session import GuidanceSession
    >>> from physio_ray.guidance.synthetic import squat_stream
    >>> ts, kp = squat_stream(30.0, 2.0)
    >>> sessions = [GuidanceSession(), GuidanceSession()]
    >>> [s.start("squat") for s in sessions][0].value
    'POSITIONING'
    >>> out = step_frames(sessions, [0.0, 0.0], [kp[0], kp[0]])
    >>> [r.state.value for r in out]
    ['POSITIONING', 'POSITIONING']
    >>> out = step_frames(sessions, [-1.0, 33.0], [kp[1], kp[1]])
    >>> type(out[0]).__name__, out[1].timestamp_ms
    ('ValueError', 33.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from physio_ray.guidance.cue_geometry import geometry_rows
from physio_ray.guidance.results import FrameResult
from physio_ray.guidance.session import GuidanceSession
from physio_ray.guidance.session_state import LiveSession
from physio_ray.guidance.session_step import Begun, begin, complete
from physio_ray.guidance.states import GuidanceError
from physio_ray.video.angles import N_ANGLES, joint_angles
from physio_ray.video.layout import to_coco17
from physio_ray.video.smoothing import OneEuroFilter, one_euro_many

__all__ = ["StepOutcome", "step_frames"]

StepOutcome = FrameResult | GuidanceError | ValueError
"""A frame's result, or the error that left its session unchanged."""


def step_frames(
    sessions: Sequence[GuidanceSession], timestamps_ms: Sequence[float], keypoints: Sequence[Any]
) -> list[StepOutcome]:
    """Steps ``keypoints[i]`` at ``timestamps_ms[i]`` through ``sessions[i]`` for every ``i``.

    Args:
        sessions: the session of each frame (the same session may appear more than once: its
            frames are taken in the order given).
        timestamps_ms: frame times.
        keypoints: ``[17|33, 2..4]`` per frame (see :func:`physio_ray.guidance.features.as_xyzv`).

    Returns:
        Per frame its :class:`FrameResult`, or the ``ConflictError`` / ``ValueError`` that
        :meth:`GuidanceSession.frame` would have raised (that session is unchanged).
    """
    if not len(sessions) == len(timestamps_ms) == len(keypoints):
        raise ValueError(f"need one session per frame: {len(sessions)} sessions, {len(timestamps_ms)} times")
    out: list[StepOutcome | None] = [None] * len(sessions)
    for slots in _rounds(sessions):
        _step_round(sessions, timestamps_ms, keypoints, slots, out)
    return out  # type: ignore[return-value]


def _rounds(sessions: Sequence[GuidanceSession]) -> list[list[int]]:
    """Slots grouped so that no session appears twice in a round (its k-th frame in round k)."""
    seen: dict[int, int] = {}
    rounds: list[list[int]] = []
    for slot, session in enumerate(sessions):
        k = seen.get(id(session), 0)
        seen[id(session)] = k + 1
        if k == len(rounds):
            rounds.append([])
        rounds[k].append(slot)
    return rounds


def _step_round(
    sessions: Sequence[GuidanceSession],
    timestamps_ms: Sequence[float],
    keypoints: Sequence[Any],
    slots: list[int],
    out: list[StepOutcome | None],
) -> None:
    taken: list[tuple[int, GuidanceSession, LiveSession, float, np.ndarray]] = []
    for slot in slots:
        session = sessions[slot]
        try:
            live, t, xyzv = session.accept_frame(timestamps_ms[slot], keypoints[slot])
        except (GuidanceError, ValueError) as exc:
            out[slot] = exc
            continue
        taken.append((slot, session, live, t, xyzv[0]))
    if not taken:
        return
    coco = _coco17([x for *_, x in taken])
    ts = np.array([t for _, _, _, t, _ in taken])
    angles = _angles([live for _, _, live, _, _ in taken], ts, coco)
    geometry = geometry_rows(
        coco,
        np.array([live.stream.cues.aspect for _, _, live, _, _ in taken]),
        np.array([live.stream.cues.min_visibility for _, _, live, _, _ in taken]),
    )
    begun: list[Begun] = []
    for k, (_, session, live, t, _) in enumerate(taken):
        cue_row, switched = live.stream.cues.advance(t, geometry[k])
        view = live.stream.cues.view_label
        begun.append(begin(live, t, angles[k], cue_row, bool(switched), view, session.classifier, session.config))
    probas = _run_models(
        [(s.classifier, b.classifier_window) for (_, s, *_), b in zip(taken, begun, strict=True)], "predict_proba"
    )
    qualities = _run_models(
        [(live.selection.quality, b.quality_window) for (_, _, live, *_), b in zip(taken, begun, strict=True)], "score"
    )
    for k, (slot, session, live, _, _) in enumerate(taken):
        out[slot] = complete(live, begun[k], probas[k], qualities[k], session.config)


def _coco17(frames: list[np.ndarray]) -> np.ndarray:
    """``[M, 17, 4]`` COCO-17 points of frames of 17 or 33 points (one call per layout)."""
    out = np.empty((len(frames), 17, 4))
    by_points: dict[int, list[int]] = {}
    for i, f in enumerate(frames):
        by_points.setdefault(f.shape[0], []).append(i)
    for idx in by_points.values():
        out[idx] = to_coco17(np.stack([frames[i] for i in idx]))
    return out


def _angles(lives: list[LiveSession], ts: np.ndarray, coco: np.ndarray) -> np.ndarray:
    """Smoothed joint angles of one frame per session, as each session's FeatureExtractor
    (:meth:`~physio_ray.guidance.features.FeatureExtractor.push_many`) computes them."""
    pts = coco.copy()
    pts[..., 2] = np.nan  # image depth is not trusted (see physio_ray.video.angles)
    groups: dict[tuple[Any, ...], list[int]] = {}
    smoothers: list[OneEuroFilter | None] = []
    for i, live in enumerate(lives):
        ex = live.stream.features
        f = ex.smoother()
        smoothers.append(f)
        key = (f and (f.min_cutoff, f.beta, f.d_cutoff, f.channels), ex.aspect, ex.cfg.min_visibility)
        groups.setdefault(key, []).append(i)
    angles = np.empty((len(lives), N_ANGLES))
    for (settings, aspect, min_vis), idx in groups.items():
        rows = pts[idx]
        if settings is not None:
            filters = [f for i in idx if (f := smoothers[i]) is not None]
            rows = one_euro_many(filters, rows, ts[idx] / 1000.0)
        angles[idx] = joint_angles(rows, "image2d", aspect=aspect, min_visibility=min_vis)
    return angles


def _run_models(requests: list[tuple[Any, np.ndarray | None]], method: str) -> list[Any]:
    """Runs every due window through its model: one ``<method>_many`` call per model object
    (the shared LSTMs), else one call per window (the rule models are cheap numpy)."""
    results: list[Any] = [None] * len(requests)
    by_model: dict[int, tuple[Any, list[int]]] = {}
    for i, (model, window) in enumerate(requests):
        if window is not None:
            by_model.setdefault(id(model), (model, []))[1].append(i)
    for model, idx in by_model.values():
        many = getattr(model, f"{method}_many", None)
        if many is not None:
            for i, r in zip(idx, many([requests[i][1] for i in idx]), strict=True):
                results[i] = r
        else:
            for i in idx:
                results[i] = getattr(model, method)(requests[i][1])
    return results

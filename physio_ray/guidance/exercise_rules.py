"""Per-exercise phase rules and kinematic signatures, and the tracker that applies them.

Every listed exercise (:mod:`physio_ray.video.exercises`) has a rule. The seed gives the squat
(knee < 110 eccentric, knee > 150 and hip > 150 concentric); the others were chosen from angle
ranges measured on the real recordings with the shared readers and angle function:

* UI-PRMD: every correct episode of subjects s01, s03-s10 (90 per movement; each episode is one
  repetition, Kinect at 30 Hz, ``world3d`` angles after forward kinematics). Percentiles
  5/50/95 of the driving signal at the first frame ("rest") and at its extreme:

  =========================  ==================  ===========  ==============  =================
  exercise (movement)        driving signal      rest         extreme         rule rest / far
  =========================  ==================  ===========  ==============  =================
  deep_squat (m01)           mean knee           173/176/179  36/55/79        > 150 (+hip 140) / < 110
  hurdle_step (m02)          min knee            170/174/177  57/69/82        > 150 / < 110
  inline_lunge (m03)         min knee            155/162/172  67/88/110       > 145 / < 120
  side_lunge (m04)           min hip             137/143/148  64/75/96        > 130 / < 110
  sit_to_stand (m05)         mean knee           172/175/179  54/76/86        > 150 (+hip 140) / < 110
  standing_straight_leg_     min hip             149/163/167  76/87/101       > 140 / < 120
  raise (m06)
  shoulder_abduction (m07)   max shoulder        21/23/37     155/163/175     < 45 / > 90
  shoulder_extension (m08)   max shoulder        26/30/43     51/68/86        < 42 / > 50
  shoulder_rotation (m09)    (not countable)     --           --              --
  shoulder_scaption (m10)    max shoulder        19/22/33     98/112/119      < 45 / > 80
  =========================  ==================  ===========  ==============  =================

  ``shoulder_rotation`` (internal-external rotation with the arm abducted) turns the forearm
  about the upper arm: none of the 16 shared angles follows it (elbow and shoulder angles move
  5-24 deg, mostly noise), so it is marked not countable: phases are shown, no reps counted.
  The side lunge uses the hip because its knee signal collapses in a frontal 2D view (median
  extreme 136 deg vs 87 deg in 3D); its hip signal holds in both.
* KERAAL (one correct BlazePose recording per exercise, 2D image angles, 30 fps): hiding_face
  (CTK) raises both arms (mean shoulder 15 -> 176, staying above 110 while the hands cover the
  face) - one excursion per rep; flank_stretch (ELK) bends to one side then the other (trunk
  lean 1 -> 25 -> 0 -> 30 -> 0): two excursions per rep; torso_rotation (RTK) turns one way
  then the other (neck angle 178 -> 120 -> 178 -> 120 -> 173): two excursions per rep. With one
  recording each these three rules rest on thin evidence.

Targets (``target_deg``: "full range" for the quality score) sit near the median extreme of the
correct executions, so deliberately incorrect ones (``_inc``) mostly fall short of them.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from types import MappingProxyType
from typing import Literal

import numpy as np

from physio_ray.guidance.config import GuidanceConfig
from physio_ray.guidance.cues import RestLevel, cue_index
from physio_ray.guidance.phases import MovementPhase, PhaseRule, PhaseTracker, combine_angles, scaled_rule
from physio_ray.guidance.reps import MovementState, RepCounter, RepEvent
from physio_ray.guidance.rule_models import KinematicSignature, RuleExerciseClassifier, RuleQualityModel
from physio_ray.video.angles import GROUPS, angle_index

KNEES, HIPS, SHOULDERS, ELBOWS = GROUPS["knee"], GROUPS["hip"], GROUPS["shoulder"], GROUPS["elbow"]

_UP: Literal["increase"] = "increase"
_DOWN: Literal["decrease"] = "decrease"

RULES: MappingProxyType[str, PhaseRule] = MappingProxyType(
    {
        r.exercise: r
        for r in (
            PhaseRule("squat", KNEES, "mean", _DOWN, 150, 110, HIPS, 150, target_deg=100, note="seed 003"),
            PhaseRule("deep_squat", KNEES, "mean", _DOWN, 150, 110, HIPS, 140, target_deg=75, note="UI-PRMD m01"),
            PhaseRule("hurdle_step", KNEES, "min", _DOWN, 150, 110, target_deg=80, note="UI-PRMD m02"),
            PhaseRule("inline_lunge", KNEES, "min", _DOWN, 145, 120, target_deg=95, note="UI-PRMD m03"),
            PhaseRule("side_lunge", HIPS, "min", _DOWN, 130, 110, target_deg=85, note="UI-PRMD m04"),
            PhaseRule("sit_to_stand", KNEES, "mean", _DOWN, 150, 110, HIPS, 140, target_deg=90, note="UI-PRMD m05"),
            PhaseRule("standing_straight_leg_raise", HIPS, "min", _DOWN, 140, 120, target_deg=95, note="UI-PRMD m06"),
            PhaseRule("shoulder_abduction", SHOULDERS, "max", _UP, 45, 90, target_deg=150, note="UI-PRMD m07"),
            PhaseRule("shoulder_extension", SHOULDERS, "max", _UP, 42, 50, target_deg=65, note="UI-PRMD m08"),
            PhaseRule(
                "shoulder_rotation", ELBOWS, "min", _DOWN, 100, 90, countable=False, note="UI-PRMD m09 (not countable)"
            ),
            PhaseRule("shoulder_scaption", SHOULDERS, "max", _UP, 45, 80, target_deg=105, note="UI-PRMD m10"),
            PhaseRule("hiding_face", SHOULDERS, "mean", _UP, 45, 90, target_deg=150, note="KERAAL CTK"),
            PhaseRule(
                "flank_stretch",
                ("trunk_lean",),
                "mean",
                _UP,
                8,
                18,
                target_deg=25,
                excursions_per_rep=2,
                note="KERAAL ELK",
            ),
            PhaseRule(
                "torso_rotation",
                ("neck",),
                "mean",
                _DOWN,
                160,
                140,
                target_deg=125,
                excursions_per_rep=2,
                note="KERAAL RTK",
            ),
        )
    }
)

_LEGS = ("left_leg_height", "right_leg_height")
_ARMS = ("left_arm_elev", "right_arm_elev")
_MEAN: Literal["mean"] = "mean"
_MIN: Literal["min"] = "min"
LEG_REST_BOUND = 60.0
"""Leg height (% of the leg) below every rest level seen on the sweep: 77-92 standing in front of
the camera, down to 65 in a wide stance seen from the side with the camera above."""
ARM_REST_BOUND = 70.0
"""Arm elevation (deg) above every rest level seen on the sweep (15-56 hanging, up to ~60 with noise)."""
CUE_EXCURSION: MappingProxyType[str, float] = MappingProxyType(
    {
        "deep_squat": 44.8,
        "hurdle_step": 29.5,
        "inline_lunge": 14.4,
        "side_lunge": 11.3,
        "sit_to_stand": 33.8,
        "standing_straight_leg_raise": 43.8,
        "shoulder_abduction": 61.6,
        "shoulder_extension": 5.8,
        "shoulder_scaption": 52.0,
    }
)
"""How far a correct repetition moves the driving cue from the person's rest level: the 5th
percentile over every single repetition of the tuning subjects (UI-PRMD s01, s03-s06), rendered
at yaw 0-90, pitch -20..20, 15/30/100 fps with detector noise
(:func:`physio_ray.guidance.view_tuning.excursions`). Leg heights in % of the leg, arm elevation
in degrees."""
VIEW_FRACTIONS: MappingProxyType[str, tuple[float, float, float]] = MappingProxyType(
    {
        "deep_squat": (0.4, 0.45, 0.05),
        "hurdle_step": (0.5, 0.55, 0.05),
        "inline_lunge": (0.5, 0.6, 0.1),
        "side_lunge": (0.5, 0.7, 0.2),
        "sit_to_stand": (0.4, 0.45, 0.05),
        "standing_straight_leg_raise": (0.4, 0.45, 0.05),
        "shoulder_abduction": (0.4, 0.45, 0.05),
        "shoulder_extension": (0.5, 0.7, 0.2),
        "shoulder_scaption": (0.4, 0.45, 0.05),
    }
)
"""Per movement ``(rest, far, hysteresis)`` as fractions of its excursion: the best cell of the view
sweep's grid (``jobs/sweep_guidance_views.py``: rest 0.3-0.5, far 0.45-0.7, hysteresis 0.05-0.2)
on the tuning subjects only; the objective decomposes by movement, so each takes its own."""


def _anchored(rule: PhaseRule, bound: float) -> PhaseRule:
    return dataclasses.replace(
        scaled_rule(rule, CUE_EXCURSION[rule.exercise], *VIEW_FRACTIONS[rule.exercise]), rest_bound=bound
    )


CUE_RULES: MappingProxyType[str, PhaseRule] = MappingProxyType(
    {
        r.exercise: r
        for r in (
            PhaseRule("squat", _LEGS, "mean", _DOWN, 85, 75, note="hip height, % of leg (no sweep data: absolute)"),
            *(
                _anchored(PhaseRule(ex, _LEGS, how, _DOWN, 0.0, -1.0, note=note), LEG_REST_BOUND)
                for ex, how, note in (
                    ("deep_squat", _MEAN, "UI-PRMD m01"),
                    ("hurdle_step", _MIN, "UI-PRMD m02"),
                    ("inline_lunge", _MEAN, "UI-PRMD m03"),
                    ("side_lunge", _MIN, "UI-PRMD m04"),
                    ("sit_to_stand", _MEAN, "UI-PRMD m05"),
                    ("standing_straight_leg_raise", _MIN, "UI-PRMD m06"),
                )
            ),
            *(
                _anchored(PhaseRule(ex, _ARMS, "max", _UP, 0.0, 1.0, note=note), ARM_REST_BOUND)
                for ex, note in (
                    ("shoulder_abduction", "UI-PRMD m07, arm elevation deg"),
                    ("shoulder_extension", "UI-PRMD m08"),
                    ("shoulder_scaption", "UI-PRMD m10"),
                )
            ),
            PhaseRule("hiding_face", _ARMS, "mean", _UP, 50, 90, note="KERAAL CTK (set a priori, no tuning data)"),
            PhaseRule(
                "flank_stretch",
                ("side_tilt",),
                "mean",
                _UP,
                4,
                9,
                excursions_per_rep=2,
                anchor="centre",
                hysteresis=3.0,
                note="KERAAL ELK (read off P1's own recording: no other data)",
            ),
            PhaseRule(
                "torso_rotation",
                ("torso_heading",),
                "mean",
                _UP,
                7,
                13,
                excursions_per_rep=2,
                anchor="centre",
                hysteresis=3.0,
                turns_body=True,
                note="KERAAL RTK (read off P1's own recording: no other data)",
            ),
        )
    }
)
"""View-invariant rules (:mod:`physio_ray.guidance.cues`): the phases from cues that keep their value
wherever the camera stands (vertical distances over limb lengths, the shoulders' tilt and heading).
The UI-PRMD movements are anchored at the person's own rest level (``anchor="rest"``): their
offsets are :data:`VIEW_FRACTIONS` of :data:`CUE_EXCURSION`, chosen on the view sweep's tuning
subjects only, and their rest level is bounded (:data:`LEG_REST_BOUND`, :data:`ARM_REST_BOUND`)
so a recording that starts mid-repetition still reads as away from rest. Flank stretch and torso
rotation leave rest to both sides and anchor at its centre (``anchor="centre"``: one excursion to
each side makes a repetition); KERAAL's P1 is their only recording, so their thresholds were read
off it and its figures are not held-out ones. The squat keeps an absolute rule (no 3D squat
recording to measure its excursion on; the real squat video is a side view)."""

_ARMS_ONLY = {"knee": 35.0, "hip": 35.0}
SIGNATURES: MappingProxyType[str, KinematicSignature] = MappingProxyType(
    {
        "squat": KinematicSignature({"knee": 40, "hip": 40}, {}),
        "deep_squat": KinematicSignature({"knee": 40, "hip": 40}, {}),
        "hurdle_step": KinematicSignature({"knee": 40, "hip": 30}, {}),
        "inline_lunge": KinematicSignature({"knee": 40}, {}),
        "side_lunge": KinematicSignature({"hip": 30}, {}),
        "sit_to_stand": KinematicSignature({"knee": 40, "hip": 40}, {}),
        "standing_straight_leg_raise": KinematicSignature({"hip": 40}, {}),
        "shoulder_abduction": KinematicSignature({"shoulder": 60}, _ARMS_ONLY),
        "shoulder_extension": KinematicSignature({"shoulder": 25}, _ARMS_ONLY),
        "shoulder_rotation": KinematicSignature({"elbow": 15}, _ARMS_ONLY),
        "shoulder_scaption": KinematicSignature({"shoulder": 60}, _ARMS_ONLY),
        "hiding_face": KinematicSignature({"shoulder": 60, "elbow": 40}, _ARMS_ONLY),
        "flank_stretch": KinematicSignature({"trunk": 15}, {"knee": 35.0}),
        "torso_rotation": KinematicSignature({"neck": 25}, {}),
    }
)
"""Ranges of motion per group measured on the same recordings (UI-PRMD 10th percentile of the
movers, 90th percentile of the still groups, in 3D and in a frontal 2D projection)."""


def known() -> tuple[str, ...]:
    """Every exercise the engine has a rule for."""
    return tuple(RULES)


@functools.cache
def default_classifier() -> RuleExerciseClassifier:
    """The rule classifier over every known exercise (one shared instance: it is stateless, and
    sessions that share it have their windows scored in one batched call)."""
    groups = {g: angle_index(names) for g, names in GROUPS.items()}
    return RuleExerciseClassifier(SIGNATURES, groups)


@functools.cache
def default_quality_model(exercise: str) -> RuleQualityModel:
    """The rule quality model of ``exercise`` (one shared, stateless instance per exercise).

    Raises:
        KeyError: for an exercise without a rule.
    """
    rule = RULES[exercise]
    return RuleQualityModel(rule, angle_index(rule.driving))


class ExerciseTracker:
    """Driving signal -> phase (hysteresis) -> repetitions, for one exercise.

    Two sources of the driving signal: the 16 joint angles (``view_invariant=False``, the seed's
    rules in :data:`RULES`), or the view-invariant cues of :mod:`physio_ray.guidance.cues`
    (``view_invariant=True``, the rules in :data:`CUE_RULES`; an exercise without a cue rule keeps
    its angle rule). ``rule`` is always the exercise's angle rule (feedback and quality read it);
    ``phase_rule`` is the one that drives the phases.

    Args:
        exercise: canonical exercise name (a key of :data:`RULES`).
        cfg: hysteresis, stability and rep-interval settings.
        rule: a replacement angle rule (a sweep's shifted thresholds); default ``RULES[exercise]``.
        view_invariant: drive the phases from cues (then :meth:`update` needs ``cues``).
        cue_rule: a replacement cue rule; default ``CUE_RULES[exercise]``.
        max_events: keep only the latest events in ``movement.events`` (see
            :class:`~physio_ray.guidance.reps.RepCounter`; None keeps all).
    """

    def __init__(
        self,
        exercise: str,
        cfg: GuidanceConfig,
        rule: PhaseRule | None = None,
        view_invariant: bool = False,
        cue_rule: PhaseRule | None = None,
        max_events: int | None = None,
    ) -> None:
        self.rule = rule if rule is not None else RULES[exercise]
        cue_rule = cue_rule if cue_rule is not None else CUE_RULES.get(exercise)
        self.uses_cues = view_invariant and cue_rule is not None
        self.phase_rule = cue_rule if self.uses_cues and cue_rule is not None else self.rule
        pr = self.phase_rule
        self._drive = cue_index(pr.driving) if self.uses_cues else angle_index(pr.driving)
        self._secondary = angle_index(pr.secondary) if pr.secondary and not self.uses_cues else None
        self._phases = PhaseTracker(pr, cfg.hysteresis_deg)
        self._reps = RepCounter(pr, cfg.phase_stability_ms, cfg.min_rep_interval_ms, max_events)
        # A rule that turns the body on purpose cannot also read a turn of it as turning round
        # (a trunk rotation from +70 to -70 deg would be one).
        self._heeds_switches = not pr.turns_body
        self.rest_level: RestLevel | None = None
        if pr.anchor != "absolute":
            centre = pr.anchor == "centre"
            sign = 1.0 if centre else pr.sign
            tau = 0.0 if centre else cfg.rest_tau_ms  # the mode's band already absorbs jitter
            self.rest_level = RestLevel(sign, cfg.rest_window_ms, tau, cfg.max_frame_gap_ms, centre)
        self.side_switches = 0

    @property
    def phase(self) -> MovementPhase:
        """Phase of the latest frame."""
        return self._reps.state.current_phase

    @property
    def movement(self) -> MovementState:
        """The seed's MovementState."""
        return self._reps.state

    @property
    def reps(self) -> int:
        """Repetitions counted so far (regardless of session state)."""
        return self._reps.state.rep_count

    def finish(self, timestamp_ms: float) -> RepEvent | None:
        """End of a recording (see :meth:`physio_ray.guidance.reps.RepCounter.finish`)."""
        return self._reps.finish(timestamp_ms)

    def signal(self, angles: np.ndarray, cues: np.ndarray | None = None) -> tuple[float, float]:
        """Driving and secondary value of one frame (NaN when not visible).

        Args:
            angles: ``[16]`` joint angles.
            cues: ``[N_CUES]`` cue values (needed when :attr:`uses_cues`).
        """
        if self.uses_cues:
            if cues is None:
                raise ValueError(f"{self.rule.exercise}: a view-invariant tracker needs the frame's cues")
            return float(combine_angles(cues, self._drive, self.phase_rule.combine)), math.nan
        drive = float(combine_angles(angles, self._drive, self.rule.combine))
        sec = math.nan
        if self._secondary is not None:
            sec = float(combine_angles(angles, self._secondary, "mean"))
        return drive, sec

    def update(
        self,
        timestamp_ms: float,
        dt_ms: float,
        angles: np.ndarray,
        cues: np.ndarray | None = None,
        side_switch: bool = False,
    ) -> tuple[MovementPhase, RepEvent | None, bool]:
        """Advances by one frame.

        Args:
            timestamp_ms: frame time.
            dt_ms: time the frame stands for.
            angles: ``[16]`` joint angles of the frame.
            cues: ``[N_CUES]`` view-invariant cues (NaN where not visible; all NaN when the view
                is unknown), used when :attr:`uses_cues`.
            side_switch: the body turned round on this frame: the repetition under way is
                dropped and the phases start afresh.

        Returns:
            ``(phase, event, usable)``: usable is False when the driving joints are not visible.
        """
        if side_switch and self._heeds_switches:
            self.side_switches += 1
            self._phases.reset()
            self._reps.drop_attempt()
            if self.rest_level is not None:
                self.rest_level.reset()
        drive, sec = self.signal(angles, cues)
        side = 0
        if self.rest_level is not None:  # thresholds are offsets from the person's own rest level
            level = self.rest_level.push(timestamp_ms, drive)
            bound = self.phase_rule.rest_bound
            if bound is not None and (bound - level) * self.phase_rule.sign > 0:
                level = bound
            drive -= level
            if self.rest_level.centre:  # either side of rest (an angle difference wraps at 180)
                drive = (drive + 180.0) % 360.0 - 180.0
                side = 1 if drive > 0 else -1 if drive < 0 else 0
                drive = abs(drive)
        phase = self._phases.update(drive, sec)
        event = self._reps.update(timestamp_ms, dt_ms, phase, drive, side)
        return phase, event, math.isfinite(drive)

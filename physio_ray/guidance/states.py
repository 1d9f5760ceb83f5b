"""Session states of the guidance state machine, the allowed transitions and the typed errors."""

from __future__ import annotations

from enum import StrEnum


class SessionState(StrEnum):
    """The seed's SessionState."""

    POSITIONING = "POSITIONING"  # user getting into position
    VERIFYING = "VERIFYING"  # confirming the exercise selection
    READY = "READY"  # exercise confirmed (locked), waiting for movement
    ACTIVE = "ACTIVE"  # exercise in progress
    UNCERTAINTY = "UNCERTAINTY"  # contradictory evidence: feedback paused, user asked to confirm
    COMPLETED = "COMPLETED"  # session ended


S = SessionState

TRANSITIONS: dict[SessionState, frozenset[SessionState]] = {
    S.POSITIONING: frozenset({S.VERIFYING, S.COMPLETED}),
    # VERIFYING -> POSITIONING when the body leaves the picture; -> UNCERTAINTY when the movement
    # contradicts the selection before it could be confirmed (never a silent switch).
    S.VERIFYING: frozenset({S.POSITIONING, S.READY, S.UNCERTAINTY, S.COMPLETED}),
    S.READY: frozenset({S.ACTIVE, S.UNCERTAINTY, S.COMPLETED}),
    S.ACTIVE: frozenset({S.UNCERTAINTY, S.COMPLETED}),
    # confirm() -> READY/ACTIVE (back where the session was); reselect() -> VERIFYING.
    S.UNCERTAINTY: frozenset({S.READY, S.ACTIVE, S.VERIFYING, S.COMPLETED}),
    S.COMPLETED: frozenset(),
}
"""Every transition the state machine may take; anything else is a bug (asserted)."""


class GuidanceError(Exception):
    """Base class of the guidance engine's errors."""


class ConflictError(GuidanceError):
    """An action that the session's current state does not allow (HTTP 409 at the API).

    Attributes:
        state: the state the session was in.
        action: what was attempted.
    """

    def __init__(self, action: str, state: SessionState, hint: str) -> None:
        self.state = state
        self.action = action
        super().__init__(f"cannot {action} while the session is {state.value}: {hint}")


class UnknownExerciseError(GuidanceError, ValueError):
    """An exercise name the engine has no rule for."""

    def __init__(self, name: str, known: tuple[str, ...]) -> None:
        self.name = name
        super().__init__(f"unknown exercise {name!r}; choose one of {list(known)}")

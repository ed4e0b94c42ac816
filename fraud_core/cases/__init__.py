"""The rules of a case, without storage: which action a case in a given state accepts, and what
its figures mean. The pipeline (:mod:`fraud_core.pipeline.cases`) applies them in one transaction
with the repository (:mod:`fraud_core.db.repository.cases`).

States: ``open`` (waiting for an analyst) → ``in_review`` (assigned) → ``resolved_fraud`` or
``resolved_legitimate``. A resolved case takes notes only; a new alert on its card opens a new case.
"""

from __future__ import annotations

from enum import StrEnum

from fraud_core.db.models import ACTIVE_CASE_STATES, CaseState


class CaseAction(StrEnum):
    ASSIGN = "assign"
    VERDICT = "verdict"
    RESOLVE = "resolve"
    NOTE = "note"
    LIST = "list"


class CaseActionError(ValueError):
    """An action the case does not accept (resolved, unknown transaction, bad outcome)."""


class CaseNotFoundError(LookupError):
    """No case with that id."""


#: What each state accepts.
ACCEPTS: dict[CaseState, frozenset[CaseAction]] = {
    CaseState.OPEN: frozenset(CaseAction),
    CaseState.IN_REVIEW: frozenset(CaseAction),
    CaseState.RESOLVED_FRAUD: frozenset({CaseAction.NOTE}),
    CaseState.RESOLVED_LEGITIMATE: frozenset({CaseAction.NOTE}),
}


def check_action(state: str, action: CaseAction) -> None:
    """Refuse ``action`` on a case in ``state``.

    Raises:
        CaseActionError: the state does not accept it, with the reason in words.
    """
    current = CaseState(state)
    if action not in ACCEPTS[current]:
        raise CaseActionError(f"the case is {current.value.replace('_', ' ')}: it takes notes only, not {action.value}")


def is_active(state: str) -> bool:
    """Whether the case still waits for work (``open`` or ``in_review``)."""
    return CaseState(state) in ACTIVE_CASE_STATES


def resolution(outcome: str) -> CaseState:
    """The resolved state of an outcome given as ``fraud`` or ``legitimate``.

    Raises:
        CaseActionError: any other outcome.
    """
    states = {"fraud": CaseState.RESOLVED_FRAUD, "legitimate": CaseState.RESOLVED_LEGITIMATE}
    if outcome not in states:
        raise CaseActionError(f"outcome must be 'fraud' or 'legitimate', not {outcome!r}")
    return states[outcome]


__all__ = [
    "ACCEPTS",
    "CaseAction",
    "CaseActionError",
    "CaseNotFoundError",
    "check_action",
    "is_active",
    "resolution",
]

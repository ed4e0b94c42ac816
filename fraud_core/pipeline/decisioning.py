"""Decisioning: the policy (rules and lists) loaded from the warehouse, applied, and changed.

* :class:`PolicyHolder` (:func:`policy_holder`, one per warehouse and process) keeps the current
  :class:`fraud_core.decisions.Policy`; it asks the warehouse for the policy's version at most every
  ``DECISIONS_RELOAD_CHECK_SECONDS`` and reloads only when it moved, so a rule saved from the CLI
  or the API is in force in a running web app and flow within seconds, without a restart.
* :func:`apply_policy` is the one place a batch of scores becomes decisions: the live flow, the
  backfill, ``/predict`` and ``/predict/batch`` all call it (``/predict`` with one row).
* :func:`save_rule`, :func:`disable_rule`, :func:`add_list_entry`, :func:`remove_list_entry`: the
  changes, each checked first (a rule's expression by :func:`fraud_core.decisions.compile_rule`)
  and recorded in the change log with who, when, before and after.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine
from sqlmodel import Session

from fraud_core.data.tokens import card_token
from fraud_core.db import session_scope
from fraud_core.db.models import DecisionListEntry, DecisionRule
from fraud_core.db.repository import decisions as store
from fraud_core.decisions import (
    Bands,
    Decisions,
    ListEntry,
    ListField,
    ListKind,
    Outcome,
    Policy,
    Rule,
    RuleMode,
    RuleSyntaxError,
    decide,
)
from fraud_core.ml.card import ModelCard
from fraud_core.schema import CATEGORIES
from fraud_core.settings import get_settings

log = logging.getLogger(__name__)

_RULE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_TOKEN = re.compile(r"^[0-9a-f]{64}$")
_CARD_NUMBER = re.compile(r"^(?:[0-9][ -]?){7,18}[0-9]$")


class PolicyInputError(ValueError):
    """A change to the policy that cannot be made: which field, and why.

    Attributes:
        field: the input at fault (``when``, ``name``, ``value``...).
        reason: what is wrong, in words.
        column: for an expression, the 1-based column (or ``None``).
    """

    def __init__(self, field: str, reason: str, *, column: int | None = None) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.column = column


class PolicyNotFoundError(LookupError):
    """No rule, or no list entry, of that name."""


def naive_utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _naive(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


# -- loading --------------------------------------------------------------------------------------


def load_policy(*, session: Session) -> Policy:
    """The enabled rules and every list entry, at the warehouse's current version.

    A stored rule that no longer compiles (a feature it names was removed since) is left out and
    logged; it was valid when saved.
    """
    version = store.policy_version(session=session)
    rules: list[Rule] = []
    for row in store.rules(session=session, enabled_only=True):
        try:
            rules.append(Rule.parse(row.name, row.expression, row.action, priority=row.priority, mode=row.mode))
        except (RuleSyntaxError, ValueError) as exc:
            log.warning("rule %s left out: %s", row.name, exc)
    entries = tuple(
        ListEntry(
            ListKind(e.kind),
            ListField(e.field),
            e.value,
            e.reason,
            e.author,
            _naive(e.created_at) or naive_utc_now(),
            _naive(e.expires_at),
        )
        for e in store.list_entries(session=session)
    )
    return Policy(tuple(rules), entries, version)


class PolicyHolder:
    """The current policy of one warehouse, reloaded when its version moves (see the module docstring).

    Args:
        engine: the warehouse.
        check_seconds: how long a loaded policy is used before its version is asked again.
        clock: monotonic seconds (tests pass a fake one).
    """

    def __init__(
        self, engine: Engine, *, check_seconds: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.engine = engine
        self.check_seconds = get_settings().decisions.reload_check_seconds if check_seconds is None else check_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._policy: Policy | None = None
        self._fingerprint: tuple[int, str] | None = None
        self._checked_at = 0.0

    def get(self) -> Policy:
        """The policy; a failed check keeps the loaded one (the first load's failure is raised)."""
        now = self._clock()
        policy = self._policy
        if policy is not None and now - self._checked_at < self.check_seconds:
            return policy
        with self._lock:
            if self._policy is not None and now - self._checked_at < self.check_seconds:
                return self._policy
            try:
                with session_scope(self.engine) as session:
                    fingerprint = store.policy_fingerprint(session=session)
                    if self._policy is None or fingerprint != self._fingerprint:
                        self._policy = load_policy(session=session)
                        self._fingerprint = fingerprint
            except Exception:
                if self._policy is None:
                    raise
                log.warning("policy check failed; keeping version %s", self._policy.version, exc_info=True)
            self._checked_at = now
            return self._policy

    def refresh(self) -> Policy:
        """Check now (after a change made by this process)."""
        self._checked_at = -1e18
        return self.get()


_holders: weakref.WeakKeyDictionary[Engine, PolicyHolder] = weakref.WeakKeyDictionary()
_holders_lock = threading.Lock()


def policy_holder(engine: Engine) -> PolicyHolder:
    """The process-wide holder of ``engine``'s policy."""
    with _holders_lock:
        holder = _holders.get(engine)
        if holder is None:
            holder = _holders[engine] = PolicyHolder(engine)
        return holder


# -- applying -------------------------------------------------------------------------------------


def model_bands(card: ModelCard) -> Bands:
    """The card's bands: ``review`` from its threshold, ``decline`` from its decline threshold.

    A card written before decisioning has no decline threshold: its decline band is off (the
    model alone then never declines; lists and rules still may).
    """
    return Bands(review=float(card.threshold), decline=card.decline_threshold)


def decide_scores(
    inputs: Sequence[Mapping[str, Any] | pd.DataFrame], scores: np.ndarray, *, card: ModelCard, policy: Policy
) -> Decisions:
    """:func:`fraud_core.decisions.decide` with the model's bands and now."""
    return decide(list(inputs), scores, bands=model_bands(card), policy=policy, at=naive_utc_now())


def apply_policy(
    scored: pd.DataFrame, inputs: Sequence[Mapping[str, Any] | pd.DataFrame], *, card: ModelCard, policy: Policy
) -> pd.DataFrame:
    """Decide scored rows: ``outcome, band, rule_hits, list_hits, policy_version`` added, ``decision`` set.

    Args:
        scored: rows for ``predictions`` (``score`` in the inputs' order).
        inputs: the canonical transactions and their features (mappings of columns), looked up in
            that order for each name the policy needs.
        card: the scoring model's card (its bands).
        policy: rules and lists.

    Returns:
        ``scored`` with the decision columns; ``decision`` is ``outcome != approve`` (an alert and
        the review queue for ``review`` and ``decline``).
    """
    decided = decide_scores(inputs, scored["score"].to_numpy(dtype="float64"), card=card, policy=policy)
    out = scored.copy()
    out["outcome"] = decided.outcome
    out["band"] = decided.band
    out["rule_hits"] = pd.Series(decided.rule_hits, index=out.index, dtype=object)
    out["list_hits"] = pd.Series(decided.list_hits, index=out.index, dtype=object)
    out["policy_version"] = decided.policy_version
    out["decision"] = decided.alerted
    return out


# -- changing -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleView:
    name: str
    when: str
    action: str
    priority: int
    mode: str
    enabled: bool
    updated_by: str
    updated_at: datetime

    @classmethod
    def of(cls, row: DecisionRule) -> RuleView:
        return cls(
            row.name, row.expression, row.action, row.priority, row.mode, row.enabled, row.updated_by, row.updated_at
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "when": self.when,
            "action": self.action,
            "priority": self.priority,
            "mode": self.mode,
            "enabled": self.enabled,
            "updated_by": self.updated_by,
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class ListEntryView:
    list: str
    field: str
    value: str
    reason: str
    author: str
    created_at: datetime
    expires_at: datetime | None

    @classmethod
    def of(cls, row: DecisionListEntry) -> ListEntryView:
        return cls(row.kind, row.field, row.value, row.reason, row.author, row.created_at, row.expires_at)

    def as_dict(self) -> dict[str, Any]:
        return {
            "list": self.list,
            "field": self.field,
            "value": self.value,
            "reason": self.reason,
            "author": self.author,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
        }


def check_rule(name: str, when: str, action: str, *, priority: int = 100, mode: str = "active") -> Rule:
    """A rule from its parts, or :class:`PolicyInputError` naming the part at fault."""
    if not _RULE_NAME.match(name or ""):
        raise PolicyInputError("name", "1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit")
    try:
        outcome = Outcome(action)
    except ValueError:
        raise PolicyInputError("action", "one of approve, review, decline") from None
    try:
        rule_mode = RuleMode(mode)
    except ValueError:
        raise PolicyInputError("mode", "active or shadow") from None
    if not isinstance(priority, int) or isinstance(priority, bool) or not 0 <= priority <= 1_000_000:
        raise PolicyInputError("priority", "a whole number from 0 to 1,000,000")
    try:
        return Rule.parse(name, when, outcome.value, priority=priority, mode=rule_mode.value)
    except RuleSyntaxError as exc:
        raise PolicyInputError("when", exc.reason, column=exc.column) from None


def save_rule(
    engine: Engine, *, name: str, when: str, action: str, priority: int = 100, mode: str = "active", author: str
) -> RuleView:
    """Check and save a rule (a new one, or a new version of the one of that name).

    Raises:
        PolicyInputError: the name, expression, action, priority or mode is not valid.
    """
    rule = check_rule(name, when, action, priority=priority, mode=mode)
    with session_scope(engine) as session:
        row, _ = store.save_rule(
            {
                "name": rule.name,
                "expression": rule.when.text,
                "action": rule.action.value,
                "priority": rule.priority,
                "mode": rule.mode.value,
            },
            author=author,
            session=session,
        )
        view = RuleView.of(row)
    policy_holder(engine).refresh()
    return view


def disable_rule(engine: Engine, name: str, *, author: str) -> None:
    """Disable a rule. Raises :class:`PolicyNotFoundError` when there is none of that name."""
    with session_scope(engine) as session:
        if store.disable_rule(name, author=author, session=session) is None:
            raise PolicyNotFoundError(f"no rule named {name!r}")
    policy_holder(engine).refresh()


def show_rules(engine: Engine) -> list[RuleView]:
    """Every rule (disabled ones too), by priority."""
    with session_scope(engine) as session:
        return [RuleView.of(r) for r in store.rules(session=session)]


def list_value(field: str, value: str, *, token_key: str) -> str:
    """The stored value of a list entry: a card number becomes its token at once.

    Raises:
        PolicyInputError: an unknown field, or a value that does not fit it.
    """
    try:
        kind = ListField(field)
    except ValueError:
        raise PolicyInputError("field", "one of card, merchant, category") from None
    text = (value or "").strip()
    if kind is ListField.CARD:
        if _TOKEN.match(text):
            return text
        if _CARD_NUMBER.match(text):
            return card_token(re.sub(r"[ -]", "", text), token_key)
        raise PolicyInputError("value", "a card number (8 to 19 digits) or its 64-character token")
    if kind is ListField.CATEGORY and text not in CATEGORIES:
        raise PolicyInputError("value", f"a category, one of {', '.join(CATEGORIES)}")
    if not text or len(text) > 256 or "\x00" in text:
        raise PolicyInputError("value", "1 to 256 characters")
    return text


def _list_kind(kind: str) -> str:
    try:
        return ListKind(kind).value
    except ValueError:
        raise PolicyInputError("list", "allow or block") from None


def add_list_entry(
    engine: Engine,
    *,
    kind: str,
    field: str,
    value: str,
    reason: str,
    author: str,
    token_key: str,
    expires_at: datetime | None = None,
) -> ListEntryView:
    """Put a value on the allow or block list (a card number is tokenised before anything else).

    Raises:
        PolicyInputError: a bad list, field, value, reason or expiry.
    """
    list_kind = _list_kind(kind)
    stored = list_value(field, value, token_key=token_key)
    why = (reason or "").strip()
    if not why or len(why) > 500:
        raise PolicyInputError("reason", "1 to 500 characters")
    expires = _naive(expires_at)
    if expires is not None and expires <= naive_utc_now():
        raise PolicyInputError("expires", "in the past: the entry would never apply")
    with session_scope(engine) as session:
        row, _ = store.add_list_entry(
            kind=list_kind,
            field=field,
            value=stored,
            reason=why,
            expires_at=expires,
            author=author,
            session=session,
        )
        view = ListEntryView.of(row)
    policy_holder(engine).refresh()
    return view


def remove_list_entry(engine: Engine, *, kind: str, field: str, value: str, author: str, token_key: str) -> None:
    """Take a value off a list. Raises :class:`PolicyNotFoundError` when it is not there."""
    list_kind = _list_kind(kind)
    stored = list_value(field, value, token_key=token_key)
    with session_scope(engine) as session:
        if store.remove_list_entry(list_kind, field, stored, author=author, session=session) is None:
            raise PolicyNotFoundError(f"{field} is not on the {list_kind} list")
    policy_holder(engine).refresh()


def show_lists(engine: Engine) -> list[ListEntryView]:
    """Every list entry (expired ones too)."""
    with session_scope(engine) as session:
        return [ListEntryView.of(e) for e in store.list_entries(session=session)]


def policy_changes(engine: Engine, *, limit: int = 100) -> list[dict[str, Any]]:
    """The latest changes to rules and lists, newest first (version, who, when, what, before, after)."""
    with session_scope(engine) as session:
        return [
            {
                "version": c.id,
                "changed_at": c.changed_at.isoformat(),
                "changed_by": c.changed_by,
                "subject": c.subject,
                "name": c.name,
                "change": c.change,
                "before": c.before,
                "after": c.after,
            }
            for c in store.policy_changes(session=session, limit=limit)
        ]

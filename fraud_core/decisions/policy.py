"""The decision policy: lists, rules and the model's bands turned into approve / review / decline.

Precedence (first match decides; tested in ``tests/unit/test_decisions.py``):

1. **allow list**: the card, the merchant or the category is on the allow list → ``approve``;
2. **block list**: one of them is on the block list → ``decline``;
3. **active rules**, by ``priority`` (smaller first, then by name): the first that holds decides
   with its action;
4. **the model's bands**: ``score >= decline_threshold`` → ``decline``, ``score >= threshold`` →
   ``review``, otherwise ``approve``. A model card without a decline threshold has no decline band.

**Shadow rules** are evaluated and recorded on every transaction, and never change an outcome.
Every decision carries why: the model band, every rule that held (active or shadow, and whether it
decided), every list entry that matched. :func:`decide` works on whole columns (NumPy arrays);
one request is the same call over columns of length one, so every path decides alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

import numpy as np
import pandas as pd

from fraud_core.decisions.expressions import CompiledRule, compile_rule


class Outcome(StrEnum):
    """What happens to a transaction."""

    APPROVE = "approve"
    REVIEW = "review"  # an alert, and the review queue
    DECLINE = "decline"  # an alert; the transaction would be refused


class RuleMode(StrEnum):
    ACTIVE = "active"
    SHADOW = "shadow"  # evaluated and recorded, never acting


class ListKind(StrEnum):
    ALLOW = "allow"
    BLOCK = "block"


class ListField(StrEnum):
    CARD = "card"  # the card's token (``card_id``)
    MERCHANT = "merchant"
    CATEGORY = "category"


#: The transaction column each list field is matched against.
LIST_COLUMNS: Final[dict[ListField, str]] = {
    ListField.CARD: "card_id",
    ListField.MERCHANT: "merchant",
    ListField.CATEGORY: "category",
}


@dataclass(frozen=True, slots=True)
class Rule:
    """A named condition with an action.

    Attributes:
        name: unique name.
        when: the checked expression (:func:`fraud_core.decisions.compile_rule`).
        action: the outcome when it holds and is active.
        priority: smaller is evaluated first.
        mode: ``active`` or ``shadow``.
    """

    name: str
    when: CompiledRule
    action: Outcome
    priority: int = 100
    mode: RuleMode = RuleMode.ACTIVE

    @classmethod
    def parse(cls, name: str, when: str, action: str, *, priority: int = 100, mode: str = "active") -> Rule:
        """A rule from text (raises :class:`~fraud_core.decisions.RuleSyntaxError` or ``ValueError``)."""
        return cls(name, compile_rule(when), Outcome(action), int(priority), RuleMode(mode))


@dataclass(frozen=True, slots=True)
class ListEntry:
    """One value on an allow or block list.

    Attributes:
        kind: ``allow`` or ``block``.
        field: ``card`` (a card token, never a card number), ``merchant`` or ``category``.
        value: the token, merchant or category.
        reason: why it is there.
        author: who put it there.
        created_at: when (naive UTC).
        expires_at: when it stops applying (naive UTC), or ``None``.
    """

    kind: ListKind
    field: ListField
    value: str
    reason: str
    author: str
    created_at: datetime
    expires_at: datetime | None = None

    def active_at(self, at: datetime) -> bool:
        return self.expires_at is None or at < self.expires_at


@dataclass(frozen=True, slots=True)
class Bands:
    """The model's bands: ``review`` from ``review``, ``decline`` from ``decline`` (``None``: off)."""

    review: float
    decline: float | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    """Rules and lists at one version of the warehouse's policy tables.

    Attributes:
        rules: enabled rules (active and shadow).
        entries: list entries (expired ones are ignored at decision time).
        version: the policy version (the latest change's number; 0 when nothing was ever set).
    """

    rules: tuple[Rule, ...] = ()
    entries: tuple[ListEntry, ...] = ()
    version: int = 0

    @property
    def ordered_rules(self) -> list[Rule]:
        return sorted(self.rules, key=lambda r: (r.priority, r.name))

    def names_needed(self) -> frozenset[str]:
        """The names the rules use (so callers compute only these features)."""
        out: set[str] = set()
        for rule in self.rules:
            out |= rule.when.names
        return frozenset(out)

    def list_values(self, at: datetime) -> dict[tuple[ListKind, ListField], dict[str, ListEntry]]:
        """Active entries by (kind, field), keyed by value."""
        out: dict[tuple[ListKind, ListField], dict[str, ListEntry]] = {}
        for entry in self.entries:
            if entry.active_at(at):
                out.setdefault((entry.kind, entry.field), {})[entry.value] = entry
        return out


EMPTY_POLICY: Final = Policy()


@dataclass(slots=True)
class Decisions:
    """Decisions of ``n`` transactions, column-wise.

    Attributes:
        outcome: ``approve``/``review``/``decline`` per transaction.
        band: the model band (``approve``/``review``/``decline``) per transaction.
        rule_hits: per transaction, ``{rule, action, mode, decided}`` for each rule that held.
        list_hits: per transaction, ``{list, field, value, reason}`` for each matching entry
            (``value`` omitted for cards: a token means nothing to a reader).
        policy_version: the policy version decided with.
    """

    outcome: np.ndarray
    band: np.ndarray
    rule_hits: list[list[dict[str, Any]]]
    list_hits: list[list[dict[str, Any]]]
    policy_version: int = 0
    flags: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def alerted(self) -> np.ndarray:
        """``review`` or ``decline``: an alert, and the review queue."""
        return self.outcome != Outcome.APPROVE.value


def model_band(scores: np.ndarray, bands: Bands) -> np.ndarray:
    """The model's band of each score."""
    s = np.asarray(scores, dtype=np.float64)
    out = np.where(s >= bands.review, Outcome.REVIEW.value, Outcome.APPROVE.value).astype(object)
    if bands.decline is not None:
        out[s >= bands.decline] = Outcome.DECLINE.value
    return out


def column(source: Mapping[str, Any] | pd.DataFrame, name: str, n: int) -> np.ndarray:
    """``source[name]`` as an array of ``n`` values (a scalar is repeated; text as objects)."""
    value = source[name]
    if hasattr(value, "to_numpy"):
        array = value.to_numpy()
    elif isinstance(value, np.ndarray):
        array = value
    else:
        array = np.asarray([value] * n if n != 1 else [value])
    if array.dtype.kind in "US":
        array = array.astype(object)
    return array


def decide(
    inputs: Mapping[str, Any] | Sequence[Mapping[str, Any] | pd.DataFrame],
    scores: np.ndarray,
    *,
    bands: Bands,
    policy: Policy,
    at: datetime,
) -> Decisions:
    """Decide ``len(scores)`` transactions (see the module docstring for the precedence).

    Args:
        inputs: one mapping, or several looked up in order (e.g. the canonical transactions, then
            their features), from name to a column of values; it must hold ``card_id``,
            ``merchant``, ``category`` and every name the rules use. ``score`` is taken from ``scores``.
        scores: the model's probabilities.
        bands: the model's bands.
        policy: rules and lists.
        at: now (naive UTC), for list expiry.
    """
    sources = [inputs] if isinstance(inputs, Mapping | pd.DataFrame) else list(inputs)
    s = np.asarray(scores, dtype=np.float64)
    n = len(s)

    def lookup(name: str) -> np.ndarray:
        if name == "score":
            return s
        for source in sources:
            if name in source:
                return column(source, name, n)
        raise KeyError(f"no value for {name!r} among the decision inputs")

    band = model_band(s, bands)
    outcome = band.copy()
    undecided = np.ones(n, dtype=bool)
    list_hits: list[list[dict[str, Any]]] = [[] for _ in range(n)]
    flags: dict[str, np.ndarray] = {}
    lists = policy.list_values(at)
    for kind in (ListKind.ALLOW, ListKind.BLOCK):
        hit_any = np.zeros(n, dtype=bool)
        for list_field, column_name in LIST_COLUMNS.items():
            entries = lists.get((kind, list_field), {})
            name = f"{list_field.value}_{'allowed' if kind is ListKind.ALLOW else 'blocked'}"
            if not entries:
                flags[name] = np.zeros(n, dtype=bool)
                continue
            values = lookup(column_name)
            hit = np.isin(values, list(entries))
            flags[name] = hit
            hit_any |= hit
            for row in np.flatnonzero(hit):
                entry = entries[str(values[row])]
                item: dict[str, Any] = {"list": kind.value, "field": list_field.value, "reason": entry.reason}
                if list_field is not ListField.CARD:
                    item["value"] = entry.value
                list_hits[row].append(item)
        act = hit_any & undecided
        outcome[act] = Outcome.APPROVE.value if kind is ListKind.ALLOW else Outcome.DECLINE.value
        undecided &= ~act

    rule_hits: list[list[dict[str, Any]]] = [[] for _ in range(n)]
    names: dict[str, Any] = dict(flags)
    for name in policy.names_needed() - set(names):
        names[name] = lookup(name)
    for rule in policy.ordered_rules:
        held = rule.when.evaluate(names, n)
        decided = held & undecided if rule.mode is RuleMode.ACTIVE else np.zeros(n, dtype=bool)
        if decided.any():
            outcome[decided] = rule.action.value
            undecided &= ~decided
        for row in np.flatnonzero(held):
            rule_hits[row].append(
                {"rule": rule.name, "action": rule.action.value, "mode": rule.mode.value, "decided": bool(decided[row])}
            )
    return Decisions(outcome, band, rule_hits, list_hits, policy.version, flags)

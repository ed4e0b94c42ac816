"""Decisioning: the policy around the model (lists, rules, three outcomes), framework- and I/O-free.

* :mod:`~fraud_core.decisions.expressions`: the rule language (:func:`compile_rule`), safe and
  evaluated over whole columns.
* :mod:`~fraud_core.decisions.policy`: :class:`Policy` (rules and lists), :class:`Bands` (the
  model's thresholds) and :func:`decide`, the one place an outcome is worked out.

The warehouse keeps rules and lists (``fraud_core.db.repository.decisions``); the pipeline loads
them (``fraud_core.pipeline.decisioning``) and calls :func:`decide` on every path.
"""

from __future__ import annotations

from fraud_core.decisions.expressions import (
    LIST_FLAGS,
    RULE_FUNCTIONS,
    RULE_NAMES,
    TRANSACTION_FIELDS,
    CompiledRule,
    RuleSyntaxError,
    compile_rule,
)
from fraud_core.decisions.policy import (
    EMPTY_POLICY,
    Bands,
    Decisions,
    ListEntry,
    ListField,
    ListKind,
    Outcome,
    Policy,
    Rule,
    RuleMode,
    decide,
    model_band,
)

__all__ = [
    "EMPTY_POLICY",
    "LIST_FLAGS",
    "RULE_FUNCTIONS",
    "RULE_NAMES",
    "TRANSACTION_FIELDS",
    "Bands",
    "CompiledRule",
    "Decisions",
    "ListEntry",
    "ListField",
    "ListKind",
    "Outcome",
    "Policy",
    "Rule",
    "RuleMode",
    "RuleSyntaxError",
    "compile_rule",
    "decide",
    "model_band",
]

"""The rule language: a safe expression over a transaction, its features, its score and its lists.

Rules are written as Python-like boolean expressions, for example
``amount > 800 and category == "shopping_net" and score > 0.2`` or ``card_blocked or
merchant in ["fraud_Kirlin and Sons", "fraud_Sporer-Keebler"]``. They are evaluated by
`simpleeval <https://github.com/danthedeckie/simpleeval>`_ (never ``eval``), restricted further here:

* the only names are :data:`RULE_NAMES` (transaction fields, the features of
  :mod:`fraud_core.features.definitions`, ``score``, and the list-membership flags);
* the only calls are :data:`RULE_FUNCTIONS` (``abs``, ``min``, ``max``);
* no attribute access, subscripts, comprehensions, lambdas, assignments, imports or f-strings.

One expression evaluates a whole frame at once: each name is bound to a NumPy array (one value per
transaction) and the boolean operators are the element-wise ones, so a backtest over a million rows
is a few array operations, and one ``/predict`` request is the same code over arrays of length one.

:func:`compile_rule` checks an expression when a rule is saved: a syntax error, an unknown name, a
forbidden construct or a type error (``category > 5``) is a :class:`RuleSyntaxError` with the
1-based column and the reason.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import simpleeval

from fraud_core.features import CATEGORICAL_FEATURES, FEATURE_COLUMNS

#: Transaction fields a rule may name (canonical names; text fields compare as strings).
TRANSACTION_FIELDS: Final[dict[str, str]] = {
    "amount": "number",
    "category": "text",
    "merchant": "text",
    "state": "text",
    "city": "text",
    "zip": "text",
    "job": "text",
    "gender": "text",
    "city_pop": "number",
    "lat": "number",
    "long": "number",
    "merch_lat": "number",
    "merch_long": "number",
    "card_id": "text",
    "card_last4": "text",
}
#: List-membership flags: ``card_blocked`` is true when the card's token is on the block list, etc.
LIST_FLAGS: Final[tuple[str, ...]] = tuple(
    f"{field}_{kind}" for field in ("card", "merchant", "category") for kind in ("allowed", "blocked")
)
#: Every name a rule may use, with its kind (``number``, ``text`` or ``flag``).
RULE_NAMES: Final[dict[str, str]] = {
    **TRANSACTION_FIELDS,
    **{name: ("text" if name in CATEGORICAL_FEATURES else "number") for name in FEATURE_COLUMNS},
    "score": "number",
    **dict.fromkeys(LIST_FLAGS, "flag"),
}


def _reduce(function: Any, *values: Any) -> Any:
    out = values[0]
    for value in values[1:]:
        out = function(out, value)
    return out


#: The functions a rule may call (element-wise).
RULE_FUNCTIONS: Final[dict[str, Any]] = {
    "abs": np.abs,
    "min": lambda *values: _reduce(np.minimum, *values),
    "max": lambda *values: _reduce(np.maximum, *values),
}

_SAMPLE: Final[dict[str, Any]] = {"number": 1.0, "text": "x", "flag": False}


class RuleSyntaxError(ValueError):
    """An expression that cannot be a rule.

    Attributes:
        column: 1-based position in the expression (``None`` when not tied to one place).
        reason: what is wrong, in words.
    """

    def __init__(self, reason: str, *, column: int | None = None) -> None:
        where = f"at column {column}: " if column is not None else ""
        super().__init__(f"{where}{reason}")
        self.column = column
        self.reason = reason


def _member(value: Any, options: Any) -> Any:
    if isinstance(options, list | tuple):
        return np.isin(value, list(options))
    raise TypeError('\'in\' needs a list of values on its right, e.g. category in ["travel", "misc_net"]')


_OPERATORS: Final[dict[type, Any]] = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.true_divide,
    ast.Mod: np.mod,
    ast.Eq: np.equal,
    ast.NotEq: np.not_equal,
    ast.Gt: np.greater,
    ast.Lt: np.less,
    ast.GtE: np.greater_equal,
    ast.LtE: np.less_equal,
    ast.Not: np.logical_not,
    ast.USub: np.negative,
    ast.UAdd: np.positive,
    ast.In: _member,
    ast.NotIn: lambda value, options: np.logical_not(_member(value, options)),
}

#: The syntax a rule may use; anything else (attributes, subscripts, lambdas...) is refused.
_ALLOWED_NODES: Final[tuple[type, ...]] = (
    ast.Expression,
    ast.Expr,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.BinOp,
    ast.Compare,
    ast.Call,
    ast.Name,
    ast.Load,
    ast.Constant,
    ast.List,
    ast.Tuple,
    *_OPERATORS,
)


class _ArrayEval(simpleeval.SimpleEval):
    """simpleeval with element-wise ``and``/``or``/``not``/comparisons, and fewer node kinds."""

    def __init__(self, names: Mapping[str, Any]) -> None:
        super().__init__(operators=dict(_OPERATORS), functions=dict(RULE_FUNCTIONS), names=dict(names))
        for kind in (ast.Attribute, ast.Subscript, ast.Assign, ast.AugAssign, ast.Import, ast.IfExp, ast.JoinedStr):
            self.nodes.pop(kind, None)
        self.nodes[ast.List] = self._eval_sequence
        self.nodes[ast.Tuple] = self._eval_sequence

    def _eval_sequence(self, node: ast.List | ast.Tuple) -> list[Any]:
        return [self._eval(item) for item in node.elts]

    def _eval_boolop(self, node: ast.BoolOp) -> Any:
        combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
        return _reduce(combine, *(self._eval(value) for value in node.values))

    def _eval_compare(self, node: ast.Compare) -> Any:
        left = self._eval(node.left)
        out: Any = True
        for operation, comparator in zip(node.ops, node.comparators, strict=True):
            right = self._eval(comparator)
            out = np.logical_and(out, self.operators[type(operation)](left, right))
            left = right
        return out


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A checked expression, parsed once.

    Attributes:
        text: the expression as written.
        names: the names it uses (so a backtest computes only the features it needs).
    """

    text: str
    names: frozenset[str]
    tree: ast.expr

    def evaluate(self, names: Mapping[str, Any], n: int) -> np.ndarray:
        """The rule over ``n`` transactions: one boolean per transaction.

        Args:
            names: each name the rule uses bound to an array of ``n`` values (or one scalar).
            n: how many transactions.
        """
        result = _ArrayEval(names).eval(self.text, previously_parsed=self.tree)
        out = np.asarray(result)
        if out.dtype != bool:
            out = out.astype(bool)
        return np.broadcast_to(out, (n,))


def compile_rule(text: str) -> CompiledRule:
    """Check and parse a rule expression.

    Raises:
        RuleSyntaxError: a syntax error, an unknown name or function, a forbidden construct, an
            expression that is not true/false, or a type error, with the column and the reason.
    """
    source = (text or "").strip()
    if not source:
        raise RuleSyntaxError("the expression is empty")
    if len(source) > 2000:
        raise RuleSyntaxError("the expression is longer than 2,000 characters")
    try:
        module = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        # an expression cut short reports offset 0: the problem is at its end
        raise RuleSyntaxError(f"syntax error: {exc.msg}", column=exc.offset or len(source) + 1) from None
    names: set[str] = set()
    for node in ast.walk(module):
        column = getattr(node, "col_offset", None)
        column = None if column is None else column + 1
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in RULE_FUNCTIONS:
                called = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
                raise RuleSyntaxError(
                    f"calling {called!r} is not allowed (functions: {', '.join(RULE_FUNCTIONS)})", column=column
                )
            if node.keywords:
                raise RuleSyntaxError("keyword arguments are not allowed", column=column)
        elif isinstance(node, ast.Name):
            if node.id in RULE_FUNCTIONS:
                continue
            if node.id not in RULE_NAMES:
                raise RuleSyntaxError(
                    f"unknown name {node.id!r} (a rule may use transaction fields, features, score and "
                    "list flags such as card_blocked)",
                    column=column,
                )
            names.add(node.id)
        elif isinstance(node, ast.Constant):
            if not isinstance(node.value, int | float | str | bool):
                raise RuleSyntaxError(f"the constant {node.value!r} is not allowed", column=column)
        elif not isinstance(node, _ALLOWED_NODES):
            raise RuleSyntaxError(f"{_construct(node)} is not allowed in a rule", column=column)
    rule = CompiledRule(source, frozenset(names), module.body)
    sample = {
        name: np.asarray([_SAMPLE[RULE_NAMES[name]]], dtype=object if RULE_NAMES[name] == "text" else None)
        for name in names
    }
    try:
        result = _ArrayEval(sample).eval(source, previously_parsed=module.body)
    except (TypeError, ValueError, simpleeval.InvalidExpression) as exc:
        raise RuleSyntaxError(f"the expression cannot be evaluated: {exc}") from None
    if np.asarray(result).dtype != bool:
        raise RuleSyntaxError("the expression is not a condition (it must be true or false), e.g. amount > 500")
    return rule


def _construct(node: ast.AST) -> str:
    words = {
        ast.Attribute: "attribute access",
        ast.Subscript: "indexing",
        ast.Lambda: "a lambda",
        ast.IfExp: "an if-expression",
        ast.NamedExpr: "an assignment",
        ast.JoinedStr: "an f-string",
        ast.ListComp: "a comprehension",
        ast.GeneratorExp: "a comprehension",
        ast.Dict: "a dictionary",
        ast.Set: "a set",
        ast.Starred: "unpacking",
        ast.Await: "await",
    }
    return words.get(type(node), type(node).__name__)

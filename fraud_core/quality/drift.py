"""Population stability index (PSI) of features and scores against a training reference.

A *reference* summarises one column of the champion's training data: for a numeric column, the
inner bin edges (deciles of the training values) and the share of training rows in each bin; for a
categorical column, the share of each category. The reference is small and JSON-ready so it is kept
with the model (``metadata.json``) and the live data never has to be compared with the raw training
set.

PSI = Σ (aᵢ − eᵢ) · ln(aᵢ / eᵢ) over the bins, with e the reference shares and a the current
ones. By the usual rule of thumb, below 0.1 nothing moved, 0.1–0.25 is a moderate shift and above
0.25 a major one; the thresholds live in :class:`fraud_core.settings.QualitySettings`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from fraud_core.quality.results import CheckResult, Status, grade_upper

#: Shares are floored at this value so that an empty bin does not make PSI infinite.
EPSILON = 1e-4
#: Categories absent from the reference are pooled under this key.
OTHER = "__other__"
MISSING = "__missing__"


def numeric_reference(values: Sequence[float] | np.ndarray | pd.Series, bins: int = 10) -> dict[str, Any]:
    """Summarise a numeric column as quantile bins.

    Args:
        values: the training values (NaN allowed: they get their own bin).
        bins: how many quantile bins (fewer when the column has few distinct values).

    Returns:
        ``{"kind": "numeric", "edges": [...], "proportions": [...], "missing": share}`` with
        ``len(proportions) == len(edges) + 1``.
    """
    arr = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), dtype=float)
    finite = arr[np.isfinite(arr)]
    if finite.size == 0:
        return {"kind": "numeric", "edges": [], "proportions": [1.0], "missing": 1.0 if arr.size else 0.0}
    quantiles = np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1])
    edges = np.unique(quantiles)
    props, missing = _numeric_shares(arr, edges)
    return {"kind": "numeric", "edges": edges.tolist(), "proportions": props.tolist(), "missing": missing}


def categorical_reference(values: Sequence[Any] | pd.Series) -> dict[str, Any]:
    """Summarise a categorical column as the share of each category (missing values pooled)."""
    series = pd.Series(values, dtype=object)
    n = len(series)
    if n == 0:
        return {"kind": "categorical", "proportions": {}}
    shares = series.fillna(MISSING).astype(str).value_counts(normalize=True)
    return {"kind": "categorical", "proportions": {str(k): float(v) for k, v in shares.items()}}


def build_reference(
    frame: pd.DataFrame, columns: Sequence[str] | None = None, bins: int = 10
) -> dict[str, dict[str, Any]]:
    """A reference for each column of ``frame`` (numeric or categorical by dtype)."""
    result: dict[str, dict[str, Any]] = {}
    for column in columns if columns is not None else list(frame.columns):
        series = frame[column]
        if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
            result[column] = categorical_reference(series)
        else:
            result[column] = numeric_reference(series, bins=bins)
    return result


def _numeric_shares(arr: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, float]:
    finite_mask = np.isfinite(arr)
    n = arr.size
    counts = np.bincount(np.searchsorted(edges, arr[finite_mask], side="left"), minlength=edges.size + 1)
    if n == 0:
        return np.zeros(edges.size + 1), 0.0
    return counts / n, float((~finite_mask).sum() / n)


def psi_from_shares(expected: Sequence[float] | np.ndarray, actual: Sequence[float] | np.ndarray) -> float:
    """PSI between two aligned vectors of shares (each summing to about 1)."""
    e = np.clip(np.asarray(expected, dtype=float), EPSILON, None)
    a = np.clip(np.asarray(actual, dtype=float), EPSILON, None)
    if e.shape != a.shape:
        raise ValueError(f"share vectors differ in length: {e.shape} vs {a.shape}")
    return float(np.sum((a - e) * np.log(a / e)))


def psi(reference: Mapping[str, Any], values: Sequence[Any] | np.ndarray | pd.Series) -> float:
    """PSI of ``values`` against one column's reference.

    Args:
        reference: a mapping made by :func:`numeric_reference` or :func:`categorical_reference`.
        values: the current values of that column.

    Returns:
        The PSI, or NaN when ``values`` is empty.
    """
    if len(values) == 0:
        return math.nan
    if reference.get("kind") == "categorical":
        ref_props: Mapping[str, float] = reference["proportions"]
        current = pd.Series(values, dtype=object).fillna(MISSING).astype(str)
        current = current.where(current.isin(list(ref_props)), OTHER)
        shares = current.value_counts(normalize=True)
        keys = list(ref_props) + ([OTHER] if OTHER not in ref_props else [])
        expected = [float(ref_props.get(k, 0.0)) for k in keys]
        actual = [float(shares.get(k, 0.0)) for k in keys]
        return psi_from_shares(expected, actual)
    edges = np.asarray(reference["edges"], dtype=float)
    arr = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), dtype=float)
    props, missing = _numeric_shares(arr, edges)
    expected = [*reference["proportions"], float(reference.get("missing", 0.0))]
    return psi_from_shares(expected, [*props.tolist(), missing])


def drift_checks(
    reference: Mapping[str, Mapping[str, Any]],
    current: pd.DataFrame,
    *,
    warn: float,
    fail: float,
    min_rows: int = 1,
    prefix: str = "psi",
) -> list[CheckResult]:
    """One PSI check per column that has a reference.

    Args:
        reference: column name → reference (see :func:`build_reference`).
        current: the window's values; columns missing from it fail their check.
        warn: PSI above which a check warns.
        fail: PSI above which a check fails.
        min_rows: below this many rows the check warns (too few rows to say anything).
        prefix: the check names are ``{prefix}:{column}``.

    Returns:
        The checks, in the reference's column order.
    """
    results = []
    for column, ref in reference.items():
        name = f"{prefix}:{column}"
        if column not in current.columns:
            results.append(
                CheckResult(name, Status.FAIL, None, fail, f"column {column!r} missing from the window", "drift", warn)
            )
            continue
        values = current[column]
        if len(values) < min_rows:
            results.append(
                CheckResult(
                    name,
                    Status.WARN,
                    None,
                    fail,
                    f"only {len(values)} rows (< {min_rows}): PSI not measured",
                    "drift",
                    warn,
                )
            )
            continue
        value = psi(ref, values)
        status = grade_upper(value, warn=warn, fail=fail)
        detail = f"PSI of {column} over {len(values)} rows against the champion's training reference"
        results.append(CheckResult(name, status, value, fail, detail, "drift", warn))
    return results

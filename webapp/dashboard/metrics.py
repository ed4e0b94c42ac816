"""Threshold metrics and PR curves of labelled predictions, per model version and role."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, precision_recall_curve


def threshold_metrics(frame: pd.DataFrame) -> pd.DataFrame:
    """Precision, recall, F1 and the confusion matrix at each version's own threshold.

    Args:
        frame: :func:`fraud_core.db.repository.labelled_predictions` rows (``model_version``,
            ``role``, ``decision``, ``is_fraud``).

    Returns:
        One row per (model_version, role): ``n, tp, fp, fn, tn, precision, recall, f1``
        (NaN when undefined).
    """
    columns = ["model_version", "role", "n", "tp", "fp", "fn", "tn", "precision", "recall", "f1"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for (version, role), group in frame.groupby(["model_version", "role"], sort=True):
        decision = group["decision"].to_numpy(dtype=bool)
        truth = group["is_fraud"].to_numpy(dtype=bool)
        tp = int((decision & truth).sum())
        fp = int((decision & ~truth).sum())
        fn = int((~decision & truth).sum())
        tn = int((~decision & ~truth).sum())
        precision = tp / (tp + fp) if tp + fp else float("nan")
        recall = tp / (tp + fn) if tp + fn else float("nan")
        f1 = 2 * precision * recall / (precision + recall) if tp else (0.0 if tp + fp + fn else float("nan"))
        rows.append([version, role, len(group), tp, fp, fn, tn, precision, recall, f1])
    return pd.DataFrame(rows, columns=columns)


def pr_curves(frame: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    """Precision-recall curve per ``"version (role)"``: (recall, precision, average precision)."""

    out: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}
    if frame.empty:
        return out
    for (version, role), group in frame.groupby(["model_version", "role"], sort=True):
        truth = group["is_fraud"].to_numpy(dtype=bool)
        if truth.all() or not truth.any():
            continue  # a curve needs both classes
        scores = group["score"].to_numpy(dtype=float)
        precision, recall, _ = precision_recall_curve(truth, scores)
        out[f"{version} ({role})"] = (recall, precision, float(average_precision_score(truth, scores)))
    return out


def shadow_comparison(frame: pd.DataFrame) -> pd.DataFrame:
    """Champion vs challenger on the transactions both scored (empty when no challenger scored).

    Returns:
        :func:`threshold_metrics` of the two roles restricted to their common transactions.
    """
    if frame.empty or "challenger" not in set(frame["role"]):
        return pd.DataFrame()
    champion = frame[frame["role"] == "champion"]
    challenger = frame[frame["role"] == "challenger"]
    common = set(champion["trans_num"]) & set(challenger["trans_num"])
    if not common:
        return pd.DataFrame()
    return threshold_metrics(frame[frame["trans_num"].isin(common)])

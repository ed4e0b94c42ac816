"""The promotion gate: relative to a champion, or absolute for the first model."""

from __future__ import annotations

import math

import pytest

from fraud_core.ml.promotion import Gate, decide
from fraud_core.settings import PromotionSettings

pytestmark = pytest.mark.unit

GATE = Gate(max_pr_auc_drop=0.0, max_recall_drop=0.01, min_pr_auc=0.5, min_recall=0.5)
CHAMPION = {"pr_auc": 0.80, "recall": 0.70, "precision": 0.6}


def test_better_challenger_is_promoted_with_both_figures_kept() -> None:
    decision = decide({"pr_auc": 0.82, "recall": 0.70}, CHAMPION, GATE)
    assert decision.promoted
    assert decision.champion == CHAMPION and decision.challenger == {"pr_auc": 0.82, "recall": 0.70}
    assert "PR-AUC 0.8200 vs champion 0.8000 (+0.0200; within" in decision.reasons[0]
    assert decision.summary.startswith("promoted: ")


def test_lower_pr_auc_is_refused_even_slightly() -> None:
    decision = decide({"pr_auc": 0.799, "recall": 0.90}, CHAMPION, GATE)
    assert not decision.promoted
    assert "beyond the allowed drop" in decision.reasons[0]


def test_recall_may_drop_by_one_point_but_not_more() -> None:
    assert decide({"pr_auc": 0.85, "recall": 0.6901}, CHAMPION, GATE).promoted
    refused = decide({"pr_auc": 0.85, "recall": 0.685}, CHAMPION, GATE)
    assert not refused.promoted
    assert "recall 0.6850 vs champion 0.7000 (-0.0150; beyond" in refused.reasons[1]


def test_first_model_needs_the_absolute_minimums() -> None:
    assert decide({"pr_auc": 0.6, "recall": 0.55}, None, GATE).promoted
    refused = decide({"pr_auc": 0.45, "recall": 0.9}, None, GATE)
    assert not refused.promoted and refused.champion is None
    assert "no champion yet: PR-AUC 0.4500 < minimum 0.5000" in refused.reasons[0]


def test_missing_or_nan_metrics_never_pass() -> None:
    assert not decide({"pr_auc": math.nan, "recall": 0.9}, CHAMPION, GATE).promoted
    assert not decide({"recall": 0.9}, None, GATE).promoted


def test_gate_reads_the_promotion_settings() -> None:
    settings = PromotionSettings(max_pr_auc_drop=0.05, max_recall_drop=0.0, min_pr_auc=0.1, min_recall=0.1)
    assert decide({"pr_auc": 0.76, "recall": 0.70}, CHAMPION, settings).promoted
    assert decide({"pr_auc": 0.76, "recall": 0.70}, CHAMPION, settings).gate["max_pr_auc_drop"] == 0.05
    assert not decide({"pr_auc": 0.76, "recall": 0.69}, CHAMPION, settings).promoted

"""Model-performance checks: the champion's figures on transactions whose true labels arrived.

The figures themselves (PR-AUC, precision / recall / F1 at the model's threshold, card precision@100)
come from :mod:`fraud_core.ml.metrics`; this module only compares them with the champion's
validation figures, the ones it was promoted on. A drop larger than the configured margin warns or
fails: an absolute drop for PR-AUC, a relative one (a share of the validation figure) for the
figures at the threshold, whose scale differs a lot (card precision@100 is a few percent when there
are fewer compromised cards a day than 100). With too few labels (or no fraud among them) nothing
can be said: the checks warn.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from fraud_core.quality.results import CheckResult, Status, grade_lower

GROUP = "performance"

#: Metric keys compared, as :func:`fraud_core.ml.evaluate` names them.
PR_AUC = "pr_auc"
THRESHOLD_METRICS: tuple[str, ...] = ("precision", "recall", "f1")
CARD_PRECISION = "card_precision_at_100"


def _get(metrics: Mapping[str, float] | None, key: str) -> float | None:
    if not metrics or metrics.get(key) is None:
        return None
    value = float(metrics[key])
    return value if math.isfinite(value) else None


def compare_metric(
    name: str,
    current: float | None,
    baseline: float | None,
    *,
    warn_drop: float,
    fail_drop: float,
    relative: bool = False,
) -> CheckResult:
    """One metric against its baseline: warn or fail when it fell by more than the margins.

    Args:
        name: the metric's key.
        current: the value on the window's labelled transactions.
        baseline: the champion's validation value (``None``: no baseline, the check warns).
        warn_drop: a drop beyond this warns.
        fail_drop: a drop beyond this fails.
        relative: the drops are shares of ``baseline`` rather than absolute.
    """
    if current is None:
        return CheckResult(name, Status.WARN, None, None, f"{name} could not be measured on the window", GROUP)
    if baseline is None:
        detail = f"{name} {current:.4f}; no validation figure of the champion to compare with"
        return CheckResult(name, Status.WARN, current, None, detail, GROUP)
    scale = abs(baseline) if relative else 1.0
    fail_at = baseline - fail_drop * scale
    warn_at = baseline - warn_drop * scale
    status = grade_lower(current, warn=warn_at, fail=fail_at)
    detail = f"{name} {current:.4f} against {baseline:.4f} at validation ({current - baseline:+.4f})"
    return CheckResult(name, status, current, fail_at, detail, GROUP, warn_at)


def performance_checks(
    current: Mapping[str, float] | None,
    baseline: Mapping[str, float] | None,
    *,
    n_labelled: int,
    n_fraud: int,
    min_labelled: int,
    pr_auc_drop_warn: float,
    pr_auc_drop_fail: float,
    metric_drop_warn: float,
    metric_drop_fail: float,
) -> list[CheckResult]:
    """Checks of the champion's figures on the window's labelled transactions.

    Args:
        current: metrics measured on the window (``None`` when there was nothing to measure).
        baseline: the champion's validation metrics.
        n_labelled: labelled transactions in the window that the champion scored.
        n_fraud: how many of them are fraud.
        min_labelled: fewer labelled transactions than this, or no fraud, and the checks only warn.
        pr_auc_drop_warn: PR-AUC drop that warns.
        pr_auc_drop_fail: PR-AUC drop that fails.
        metric_drop_warn: relative drop of precision, recall, F1 or card precision@100 that warns
            (0.1: a tenth of the validation figure).
        metric_drop_fail: relative drop of those that fails.

    Returns:
        A ``labelled`` check (how much there was to judge on) and one check per metric.
    """
    enough = n_labelled >= min_labelled and n_fraud > 0 and current is not None
    coverage = CheckResult(
        "labelled",
        Status.PASS if enough else Status.WARN,
        float(n_labelled),
        float(min_labelled),
        f"{n_labelled} labelled transactions scored by the champion, {n_fraud} fraud"
        + ("" if enough else f" (need {min_labelled} and at least one fraud: metrics not judged)"),
        GROUP,
    )
    if not enough:
        return [coverage]
    margins = {PR_AUC: (pr_auc_drop_warn, pr_auc_drop_fail, False)} | dict.fromkeys(
        (*THRESHOLD_METRICS, CARD_PRECISION), (metric_drop_warn, metric_drop_fail, True)
    )
    checks = [coverage]
    for key, (warn_drop, fail_drop, relative) in margins.items():
        checks.append(
            compare_metric(
                key,
                _get(current, key),
                _get(baseline, key),
                warn_drop=warn_drop,
                fail_drop=fail_drop,
                relative=relative,
            )
        )
    return checks

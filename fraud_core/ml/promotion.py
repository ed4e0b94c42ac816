"""The promotion gate: does a challenger deserve to replace the champion?

Both models are scored on the same, most recent labelled window (true labels only), each at its own
decision threshold. The gate (``PROMOTION_*`` settings):

* with a champion: the challenger's PR-AUC is not lower than the champion's by more than
  ``max_pr_auc_drop`` (0 by default: not lower at all), and its recall at its threshold not lower by
  more than ``max_recall_drop`` (1 point by default);
* without one (the first model): the challenger meets the absolute minimums ``min_pr_auc`` and
  ``min_recall``.

The decision keeps both sets of figures and a sentence per rule, so the audit trail says why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from fraud_core.settings import PromotionSettings


@dataclass(frozen=True)
class Gate:
    """The gate's margins and minimums (see the module docstring)."""

    max_pr_auc_drop: float = 0.0
    max_recall_drop: float = 0.01
    min_pr_auc: float = 0.5
    min_recall: float = 0.5

    @classmethod
    def from_settings(cls, settings: PromotionSettings) -> Gate:
        return cls(
            max_pr_auc_drop=settings.max_pr_auc_drop,
            max_recall_drop=settings.max_recall_drop,
            min_pr_auc=settings.min_pr_auc,
            min_recall=settings.min_recall,
        )


@dataclass
class PromotionDecision:
    """The gate's verdict on one challenger.

    Attributes:
        promoted: whether the challenger becomes champion.
        reasons: one sentence per rule checked, saying whether it held and with which figures.
        challenger: the challenger's figures on the evaluation window.
        champion: the champion's figures on the same window (``None``: there was no champion).
        gate: the margins and minimums applied.
    """

    promoted: bool
    reasons: list[str]
    challenger: dict[str, float]
    champion: dict[str, float] | None
    gate: dict[str, float] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        """One line for logs, artifacts and the audit row."""
        verdict = "promoted" if self.promoted else "not promoted"
        return f"{verdict}: " + "; ".join(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        return {
            "promoted": self.promoted,
            "reasons": list(self.reasons),
            "challenger": dict(self.challenger),
            "champion": dict(self.champion) if self.champion is not None else None,
            "gate": dict(self.gate),
        }


def _metric(metrics: Mapping[str, Any], key: str) -> float:
    value = metrics.get(key)
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return out


def _clean(metrics: Mapping[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in metrics.items():
        try:
            out[str(key)] = float(value)
        except (TypeError, ValueError):
            continue
    return out


def decide(
    challenger: Mapping[str, Any],
    champion: Mapping[str, Any] | None,
    gate: Gate | PromotionSettings,
) -> PromotionDecision:
    """Apply the promotion gate.

    Args:
        challenger: the challenger's metrics on the evaluation window (``pr_auc`` and ``recall``
            are required; NaN or missing counts as failing).
        champion: the champion's metrics on the same window, or ``None`` when there is no champion.
        gate: the rules, or the ``promotion`` settings group they come from.

    Returns:
        The decision, with a reason per rule.
    """
    rules = gate if isinstance(gate, Gate) else Gate.from_settings(gate)
    c_pr, c_rec = _metric(challenger, "pr_auc"), _metric(challenger, "recall")
    reasons: list[str] = []
    ok = True
    if champion is None:
        pr_ok = c_pr >= rules.min_pr_auc
        rec_ok = c_rec >= rules.min_recall
        reasons.append(f"no champion yet: PR-AUC {c_pr:.4f} {'>=' if pr_ok else '<'} minimum {rules.min_pr_auc:.4f}")
        reasons.append(f"recall {c_rec:.4f} {'>=' if rec_ok else '<'} minimum {rules.min_recall:.4f}")
        ok = pr_ok and rec_ok
    else:
        h_pr, h_rec = _metric(champion, "pr_auc"), _metric(champion, "recall")
        pr_floor = h_pr - rules.max_pr_auc_drop
        rec_floor = h_rec - rules.max_recall_drop
        pr_ok = c_pr >= pr_floor
        rec_ok = c_rec >= rec_floor
        reasons.append(
            f"PR-AUC {c_pr:.4f} vs champion {h_pr:.4f} ({c_pr - h_pr:+.4f}; "
            f"{'within' if pr_ok else 'beyond'} the allowed drop {rules.max_pr_auc_drop:.4f})"
        )
        reasons.append(
            f"recall {c_rec:.4f} vs champion {h_rec:.4f} ({c_rec - h_rec:+.4f}; "
            f"{'within' if rec_ok else 'beyond'} the allowed drop {rules.max_recall_drop:.4f})"
        )
        ok = pr_ok and rec_ok
    return PromotionDecision(
        promoted=bool(ok),
        reasons=reasons,
        challenger=_clean(challenger),
        champion=_clean(champion) if champion is not None else None,
        gate=asdict(rules),
    )

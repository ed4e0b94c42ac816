"""What the features are, declared once: names, windows, and the words shown to people for each.

Values are computed twice, for speed: by :mod:`fraud_core.features.build` (the reference, a whole
frame at once) and by :mod:`fraud_core.online.features` (one transaction, for ``/predict``). Both
check that they computed exactly :data:`FEATURES` (:func:`check_declared`), and the parity test
compares them feature by feature. A new feature is one line here plus its code in both files.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

#: Per-card rolling windows, in seconds. The longest one is how much history the online path reads.
WINDOWS: Final[dict[str, int]] = {
    "1h": 3_600,
    "24h": 86_400,
    "7d": 7 * 86_400,
    "30d": 30 * 86_400,
}
#: The window the "amount relative to the card's history" features compare against. Bounded, so the
#: online path reproduces it from the same history it reads for the windows.
RELATIVE_WINDOW: Final[str] = "30d"
#: The window of "the card's largest amount lately": a fraud burst mixes large and small amounts,
#: and the large ones before a small one give the small one away. Chosen on the training file's
#: last 16 weeks (four 4-week folds, each fitted on the weeks before it): PR-AUC equal or better
#: in all four, never on the test period.
MAX_AMOUNT_WINDOW: Final[str] = "24h"
#: Seconds of card history the features can look back at (the longest window).
MAX_WINDOW_SECONDS: Final[int] = max(WINDOWS.values())

#: Pseudo-count of the smoothed label rates: a merchant with few old labels is pulled towards its
#: category's rate, a category towards the overall rate. A round number, not tuned.
LABEL_RATE_PRIOR_COUNT: Final[float] = 50.0

#: Hours (UTC, 24 h clock) that count as night: 22:00 to 05:59.
NIGHT_HOURS: Final[frozenset[int]] = frozenset({22, 23, 0, 1, 2, 3, 4, 5})

#: Canonical columns the features read. Everything else in a canonical frame is ignored.
INPUT_COLUMNS: Final[tuple[str, ...]] = (
    "trans_num",
    "card_id",
    "event_time",
    "amount",
    "category",
    "merchant",
    "merch_lat",
    "merch_long",
    "lat",
    "long",
    "dob",
)


@dataclass(frozen=True, slots=True)
class Feature:
    """One model input, declared once.

    Attributes:
        name: the column name (what the model, the reasons and the drift checks call it).
        description: the words shown to people for it.
        categorical: text (one code per category) rather than a number.
        uses_labels: it reads labels (only labels older than the label delay may feed it).
    """

    name: str
    description: str
    categorical: bool = False
    uses_labels: bool = False


_WINDOW_WORDS = {"1h": "1 hour", "24h": "24 hours", "7d": "7 days", "30d": "30 days"}
_STAT_WORDS = {
    "count": "Number of the card's transactions in the previous {}",
    "amount_sum": "Amount the card spent in the previous {}",
    "amount_mean": "Mean amount of the card's transactions in the previous {}",
    "amount_std": "Spread (std) of the card's amounts in the previous {}",
}

#: Every feature, in the model's column order. Both implementations compute exactly these
#: (:func:`fraud_core.features.build.build_features`, the reference, and
#: :func:`fraud_core.online.features.features_one`, the one-row twin); the parity test enumerates
#: this tuple, so a feature written in one of them only fails it.
FEATURES: Final[tuple[Feature, ...]] = (
    Feature("amount", "Transaction amount"),
    Feature("category", "Merchant category", categorical=True),
    Feature("hour", "Hour of the day (UTC)"),
    Feature("weekday", "Day of the week (0 = Monday)"),
    Feature("is_night", "At night (22:00-05:59)"),
    Feature("age_years", "Cardholder's age at the transaction"),
    Feature("home_merchant_km", "Distance from the cardholder's home to the merchant (km)"),
    Feature("secs_since_prev", "Seconds since the card's previous transaction"),
    Feature("prev_merchant_km", "Distance from the previous transaction's merchant (km)"),
    Feature("prev_speed_kmh", "Speed implied by the move from the previous merchant (km/h)"),
    *(
        Feature(f"card_{stat}_{window}", words.format(_WINDOW_WORDS[window]))
        for window in WINDOWS
        for stat, words in _STAT_WORDS.items()
    ),
    Feature(
        f"card_amount_max_{MAX_AMOUNT_WINDOW}",
        f"Largest amount of the card's transactions in the previous {_WINDOW_WORDS[MAX_AMOUNT_WINDOW]}",
    ),
    Feature("amount_ratio_30d", "Amount relative to the card's 30-day mean"),
    Feature("amount_zscore_30d", "Amount in standard deviations above the card's 30-day mean"),
    Feature("is_new_category", "First time this card buys in this category"),
    Feature(
        "category_fraud_rate", "Fraud rate of the category (labels at least the label delay old)", uses_labels=True
    ),
    Feature(
        "merchant_fraud_rate", "Fraud rate of the merchant (labels at least the label delay old)", uses_labels=True
    ),
)

#: The model's input columns, in order. ``category`` is text; every other column is numeric.
FEATURE_COLUMNS: Final[tuple[str, ...]] = tuple(f.name for f in FEATURES)
CATEGORICAL_FEATURES: Final[tuple[str, ...]] = tuple(f.name for f in FEATURES if f.categorical)
NUMERIC_FEATURES: Final[tuple[str, ...]] = tuple(f.name for f in FEATURES if not f.categorical)
#: Human-readable names, for the reasons the predictor gives and for the dashboard.
FEATURE_DESCRIPTIONS: Final[dict[str, str]] = {f.name: f.description for f in FEATURES}


def check_declared(computed: Iterable[str], *, where: str) -> None:
    """Raise unless ``computed`` names exactly the declared features (an implementation's own check).

    Raises:
        ValueError: a declared feature is not computed, or an undeclared one is.
    """
    got = set(computed)
    missing = [name for name in FEATURE_COLUMNS if name not in got]
    extra = sorted(got - set(FEATURE_COLUMNS))
    if missing or extra:
        raise ValueError(
            f"{where} does not compute the declared features (fraud_core/features/definitions.py): "
            f"missing {missing}, undeclared {extra}"
        )


def describe(feature: str) -> str:
    """The human-readable name of a feature (the column name itself when unknown)."""
    return FEATURE_DESCRIPTIONS.get(feature, feature)

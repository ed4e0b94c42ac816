"""What the features are: names, windows, and the words shown to people for each of them.

The feature values are built in :mod:`fraud_core.features.build`; this module only names them, so
that the model, the predictor's reasons, the drift checks and the dashboard agree on one list.
"""

from __future__ import annotations

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

_WINDOW_COLUMNS: tuple[str, ...] = tuple(
    f"card_{stat}_{window}" for window in WINDOWS for stat in ("count", "amount_sum", "amount_mean", "amount_std")
)

#: The model's input columns, in order. ``category`` is text; every other column is numeric.
FEATURE_COLUMNS: Final[tuple[str, ...]] = (
    "amount",
    "category",
    "hour",
    "weekday",
    "is_night",
    "age_years",
    "home_merchant_km",
    "secs_since_prev",
    "prev_merchant_km",
    "prev_speed_kmh",
    *_WINDOW_COLUMNS,
    f"card_amount_max_{MAX_AMOUNT_WINDOW}",
    "amount_ratio_30d",
    "amount_zscore_30d",
    "is_new_category",
    "category_fraud_rate",
    "merchant_fraud_rate",
)

CATEGORICAL_FEATURES: Final[tuple[str, ...]] = ("category",)
NUMERIC_FEATURES: Final[tuple[str, ...]] = tuple(c for c in FEATURE_COLUMNS if c not in CATEGORICAL_FEATURES)

_WINDOW_WORDS = {"1h": "1 hour", "24h": "24 hours", "7d": "7 days", "30d": "30 days"}
_STAT_WORDS = {
    "count": "Number of the card's transactions in the previous {}",
    "amount_sum": "Amount the card spent in the previous {}",
    "amount_mean": "Mean amount of the card's transactions in the previous {}",
    "amount_std": "Spread (std) of the card's amounts in the previous {}",
}

#: Human-readable names, for the reasons the predictor gives and for the dashboard.
FEATURE_DESCRIPTIONS: Final[dict[str, str]] = {
    "amount": "Transaction amount",
    "category": "Merchant category",
    "hour": "Hour of the day (UTC)",
    "weekday": "Day of the week (0 = Monday)",
    "is_night": "At night (22:00-05:59)",
    "age_years": "Cardholder's age at the transaction",
    "home_merchant_km": "Distance from the cardholder's home to the merchant (km)",
    "secs_since_prev": "Seconds since the card's previous transaction",
    "prev_merchant_km": "Distance from the previous transaction's merchant (km)",
    "prev_speed_kmh": "Speed implied by the move from the previous merchant (km/h)",
    **{
        f"card_{stat}_{window}": words.format(_WINDOW_WORDS[window])
        for window in WINDOWS
        for stat, words in _STAT_WORDS.items()
    },
    f"card_amount_max_{MAX_AMOUNT_WINDOW}": (
        f"Largest amount of the card's transactions in the previous {_WINDOW_WORDS[MAX_AMOUNT_WINDOW]}"
    ),
    "amount_ratio_30d": "Amount relative to the card's 30-day mean",
    "amount_zscore_30d": "Amount in standard deviations above the card's 30-day mean",
    "is_new_category": "First time this card buys in this category",
    "category_fraud_rate": "Fraud rate of the category (labels at least the label delay old)",
    "merchant_fraud_rate": "Fraud rate of the merchant (labels at least the label delay old)",
}


def describe(feature: str) -> str:
    """The human-readable name of a feature (the column name itself when unknown)."""
    return FEATURE_DESCRIPTIONS.get(feature, feature)

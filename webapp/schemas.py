"""Request and response bodies of the REST API (msgspec structs: fast, and described in OpenAPI).

The request mirrors the Kaggle raw schema (:data:`fraud_core.schema.RAW_COLUMNS`). Types and simple
bounds are checked while decoding (a wrong type or a missing field is a 422 naming the field); the
row rules (dates, card number, categories...) are :func:`fraud_core.data.to_canonical`'s, so the
API accepts exactly what the pipeline accepts. The published schema carries every rule that one
field can state (ASCII digits, bounds, non-blank text); the rules between fields or with the clock
(an event time in its window, a birth date before it) are stated in the fields' descriptions.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from fraud_core.data.validation import MAX_AMOUNT
from fraud_core.schema import CATEGORIES

#: Most transactions one ``/predict/batch`` call may carry.
MAX_BATCH_ROWS = 1000

Category = Literal[CATEGORIES]  # type: ignore[valid-type]
Latitude = Annotated[float, Meta(ge=-90.0, le=90.0, description="Degrees, -90 to 90")]
Longitude = Annotated[float, Meta(ge=-180.0, le=180.0, description="Degrees, -180 to 180")]
#: Python's whitespace, spelled out: ``\s`` differs between regex dialects (JavaScript's and
#: generated clients' leave out U+001C..U+001F, which ``str.strip`` removes).
_SPACE = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
#: Text with at least one character that is not a space (the server strips spaces), no NUL.
Text = Annotated[str, Meta(min_length=1, max_length=256, pattern=rf"^[^\x00]*[^\x00{_SPACE}][^\x00]*$")]
#: A card number as text: 8 to 19 ASCII digits, single spaces or dashes allowed between them.
CARD_TEXT = r"^(?:[0-9][ -]?){7,18}[0-9]$"


class TransactionIn(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One transaction in the Kaggle schema.

    Give the event time as ``trans_date_trans_time`` (ISO text, UTC) or as Kaggle's ``unix_time``
    (the event time shifted back by 2,557 days, as in the public files). ``trans_num`` is optional:
    one is generated when absent. ``first``, ``last`` and ``street`` are accepted and ignored; the
    card number is only used to derive the card's token and last four digits.
    """

    cc_num: (
        Annotated[int, Meta(ge=10_000_000, le=9_223_372_036_854_775_807, description="Card number, 8 to 19 digits")]
        | Annotated[
            str,
            Meta(
                pattern=CARD_TEXT,
                description="Card number: 8 to 19 ASCII digits; spaces or dashes between them are removed",
            ),
        ]
    )
    merchant: Text
    category: Annotated[Category, Meta(description="One of the 14 merchant categories")]
    amt: Annotated[float, Meta(gt=0.0, le=MAX_AMOUNT, description="Amount in dollars, > 0")]
    gender: Literal["F", "M", "f", "m"]
    city: Text
    state: Annotated[str, Meta(min_length=1, max_length=8, pattern=r"^[A-Za-z]+$")]
    zip: (
        Annotated[int, Meta(ge=0, le=99999, description="ZIP code")]
        | Annotated[str, Meta(pattern=r"^[0-9]{1,5}$", description="ZIP code as text")]
    )
    lat: Latitude
    long: Longitude
    city_pop: Annotated[int, Meta(ge=0, le=1_000_000_000)]
    job: Text
    dob: Annotated[
        str,
        Meta(
            min_length=8,
            max_length=40,
            examples=["1978-06-21"],
            description="ISO 8601 date (YYYY-MM-DD), not after the transaction",
        ),
    ]
    merch_lat: Latitude
    merch_long: Longitude
    trans_date_trans_time: (
        Annotated[
            str,
            Meta(
                min_length=1,
                max_length=40,
                examples=["2020-06-21 12:14:25"],
                description=(
                    "ISO 8601 date-time with ASCII digits (UTC unless an offset is given), within "
                    "EDGE_MAX_EVENT_AGE_DAYS before now and EDGE_MAX_EVENT_LEAD_MINUTES after it, and after 1990"
                ),
            ),
        ]
        | None
    ) = None
    unix_time: Annotated[int, Meta(ge=0, le=10_000_000_000)] | None = None
    trans_num: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_\-]{1,64}$")] | None = None
    first: Annotated[str, Meta(max_length=256)] | None = None
    last: Annotated[str, Meta(max_length=256)] | None = None
    street: Annotated[str, Meta(max_length=256)] | None = None
    is_fraud: Annotated[int, Meta(ge=0, le=1)] | None = None
    record: Annotated[
        bool,
        Meta(
            description=(
                "Store the transaction and its decision before answering (the decision log; "
                "idempotent on trans_num). false: a dry run that stores nothing"
            )
        ),
    ] = True


#: A request as the docs show it (a row of the public data, card number from its test range).
TRANSACTION_EXAMPLE: dict[str, object] = {
    "trans_date_trans_time": "2020-06-21 12:14:25",
    "cc_num": 4097773690139710,
    "merchant": "fraud_Douglas-White",
    "category": "entertainment",
    "amt": 151.5,
    "gender": "F",
    "city": "Robinson",
    "state": "ND",
    "zip": 58478,
    "lat": 47.1749,
    "long": -99.7457,
    "city_pop": 135,
    "job": "Education officer, museum",
    "dob": "1971-04-30",
    "merch_lat": 46.964663,
    "merch_long": -99.591176,
    "trans_num": "57946379b0583b4dfa61a4e5abd26dfe",
}


class BatchIn(msgspec.Struct, kw_only=True):
    """Up to :data:`MAX_BATCH_ROWS` transactions, each ``trans_num`` given at most once in the batch."""

    transactions: Annotated[list[TransactionIn], Meta(min_length=1, max_length=MAX_BATCH_ROWS)]
    record: Annotated[
        bool, Meta(description="Store the transactions and their decisions before answering (false: a dry run)")
    ] = True


class Reason(msgspec.Struct, kw_only=True):
    """One feature's contribution to a score (log-odds; positive pushes towards fraud)."""

    feature: str
    description: str
    value: float | str | None
    contribution: float


Outcome = Literal["approve", "review", "decline"]


class RuleHit(msgspec.Struct, kw_only=True):
    """A rule that held for the transaction."""

    rule: Annotated[str, Meta(description="The rule's name")]
    action: Annotated[Outcome, Meta(description="What the rule does when it decides")]
    mode: Annotated[Literal["active", "shadow"], Meta(description="shadow: recorded, never acting")]
    decided: Annotated[bool, Meta(description="This rule made the decision (the first active rule that held)")]


class ListHit(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An allow- or block-list entry that matched the transaction."""

    list: Literal["allow", "block"]
    field: Literal["card", "merchant", "category"]
    reason: str
    value: Annotated[str | None, Meta(description="The merchant or category (absent for a card)")] = None


class PredictionOut(msgspec.Struct, kw_only=True):
    """The score and decision of one transaction.

    ``decision`` follows a fixed precedence: the allow list (approve), the block list (decline),
    the active rules by priority (the first that holds decides), then the model's bands
    (``fraud_probability >= decline_threshold``: decline; ``>= threshold``: review; else approve).
    """

    trans_num: str
    fraud_probability: Annotated[float, Meta(description="The champion's calibrated probability of fraud")]
    decision: Annotated[
        Outcome,
        Meta(description="approve; review (an alert and the review queue); decline (an alert; refuse it)"),
    ]
    is_fraud: Annotated[bool, Meta(description="decision is review or decline")]
    threshold: Annotated[float, Meta(description="The model's review threshold")]
    decline_threshold: Annotated[
        float | None, Meta(description="The model's decline threshold (null: the model alone never declines)")
    ]
    band: Annotated[Outcome, Meta(description="What the model's bands alone would decide")]
    risk_level: Literal["low", "medium", "high"]
    model_version: str
    reasons: list[Reason]
    rule_hits: Annotated[list[RuleHit], Meta(description="Every rule that held, active or shadow")]
    list_hits: Annotated[list[ListHit], Meta(description="Every allow- or block-list entry that matched")]
    policy_version: Annotated[int, Meta(description="The version of the rules and lists decided with")]
    latency_ms: float


class BatchOut(msgspec.Struct, kw_only=True):
    """Scores of a batch, in the request's order."""

    predictions: list[PredictionOut]
    model_version: str
    latency_ms: float


class FieldError(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What is wrong with the request: which field, and why."""

    field: str
    reason: str
    row: int | None = None


class ErrorOut(msgspec.Struct, kw_only=True):
    """Every 4xx/5xx answer."""

    status_code: int
    detail: str
    errors: list[FieldError] = msgspec.field(default_factory=list)


class ModelOut(msgspec.Struct, kw_only=True):
    """The serving (champion) model."""

    name: str
    version: str
    kind: str | None
    threshold: float
    train_start: str | None
    train_end: str | None
    metrics: dict[str, float | int | str | None]
    #: True when the validation weeks held too few frauds for the figures to be trusted as they stand.
    metrics_uncertain: bool = False
    #: 95 % bootstrap intervals of the figures, given when they are uncertain.
    metric_intervals: dict[str, list[float]] | None = None
    note: str | None = None
    loaded_at: str


# -- the decision policy -------------------------------------------------------------------------

RuleName = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$", description="Unique rule name")]


class RuleIn(msgspec.Struct, kw_only=True):
    """A rule to save (a new one, or a new version of the one of that name)."""

    name: RuleName
    when: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=2000,
            examples=["amount > 800 and category == 'shopping_net' and score > 0.2"],
            description=(
                "A condition over transaction fields, features, score and list flags (card_blocked, "
                "merchant_allowed...); operators and, or, not, comparisons, in [...], + - * / %; "
                "functions abs, min, max"
            ),
        ),
    ]
    action: Outcome
    priority: Annotated[int, Meta(ge=0, le=1_000_000, description="Smaller is evaluated first")] = 100
    mode: Annotated[Literal["active", "shadow"], Meta(description="shadow: evaluated and recorded, never acting")] = (
        "active"
    )


#: An ISO 8601 date, or a date-time with an optional offset (the calendar itself is checked on arrival).
ISO_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}:[0-9]{2})?)?$"


class RuleOut(msgspec.Struct, kw_only=True):
    name: str
    when: str
    action: Outcome
    priority: int
    mode: Literal["active", "shadow"]
    enabled: bool
    updated_by: str
    updated_at: str


class ListEntryIn(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A value for the allow or block list. A card is a card number (tokenised at once) or its token."""

    list: Literal["allow", "block"]
    field: Literal["card", "merchant", "category"]
    value: Annotated[str, Meta(min_length=1, max_length=256)]
    reason: Annotated[str, Meta(min_length=1, max_length=500)]
    expires_at: (
        Annotated[
            str,
            Meta(
                pattern=ISO_DATE,
                description="ISO date or date-time (UTC) when it stops applying",
                examples=["2027-01-01"],
            ),
        ]
        | None
    ) = None


class ListEntryOut(msgspec.Struct, kw_only=True):
    list: Literal["allow", "block"]
    field: Literal["card", "merchant", "category"]
    value: Annotated[str, Meta(description="The merchant, the category, or the card's token (never its number)")]
    reason: str
    author: str
    created_at: str
    expires_at: str | None


class BacktestIn(msgspec.Struct, kw_only=True):
    """A rule to try over the stored transactions of a period (``start <= event_time < end``).

    ``end`` must be after ``start``, at most 800 days later. ``when`` is a condition in the rule language
    (README, "Rules"): a syntax error, a construct or constant that is not allowed, or an expression that is
    not a condition is refused with the column where it goes wrong.
    """

    when: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=2000,
            description="A condition in the rule language, true or false for a transaction",
            examples=["amount > 500 and category in ['shopping_net', 'misc_net']"],
        ),
    ]
    start: Annotated[
        str, Meta(pattern=ISO_DATE, description="ISO date or date-time (UTC), inclusive", examples=["2020-06-01"])
    ]
    end: Annotated[
        str, Meta(pattern=ISO_DATE, description="ISO date or date-time (UTC), exclusive", examples=["2020-07-01"])
    ]
    action: Literal["review", "decline"] = "review"


class BacktestOut(msgspec.Struct, kw_only=True):
    """What the rule would have caught."""

    n: Annotated[int, Meta(description="Transactions in the period")]
    scored: Annotated[int, Meta(description="Of them, with a stored champion score")]
    hits: int
    hits_per_day: float
    labelled: Annotated[int, Meta(description="Hits with a label")]
    fraud_hits: int
    precision: Annotated[float | None, Meta(description="fraud_hits / labelled")]
    recall: Annotated[float | None, Meta(description="fraud_hits / labelled fraud of the period")]
    fraud_amount_caught: float
    legit_amount_hit: float
    new_fraud_hits: Annotated[int, Meta(description="Fraud hits the model's review band missed")]
    action: str
    days: float

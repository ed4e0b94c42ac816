"""Column contracts shared by readers, the warehouse, features and models.

Two frame shapes travel through the system:

* the **raw** frame, in the public Kaggle "Credit Card Transactions Fraud Detection" schema, as
  files and feeds deliver it (with the clear card number and the holder's name and street);
* the **canonical** frame, what we keep: the card number replaced by a keyed token and its last
  four digits, names and street dropped, the event time as a real timestamp (naive, UTC).

Everything after the reader (warehouse, features, models, API) speaks the canonical frame.
"""

from __future__ import annotations

from typing import Final

RAW_COLUMNS: Final[tuple[str, ...]] = (
    "trans_date_trans_time",
    "cc_num",
    "merchant",
    "category",
    "amt",
    "first",
    "last",
    "gender",
    "street",
    "city",
    "state",
    "zip",
    "lat",
    "long",
    "city_pop",
    "job",
    "dob",
    "trans_num",
    "unix_time",
    "merch_lat",
    "merch_long",
    "is_fraud",
)

#: Personal data that is never stored: the clear card number is replaced by a token.
PII_COLUMNS: Final[tuple[str, ...]] = ("cc_num", "first", "last", "street")

#: Offset between Kaggle's ``unix_time`` and the real event time (2,557 days).
UNIX_TIME_OFFSET_SECONDS: Final[int] = 220_924_800

CANONICAL_COLUMNS: Final[tuple[str, ...]] = (
    "trans_num",
    "card_id",
    "card_last4",
    "event_time",
    "amount",
    "category",
    "merchant",
    "merch_lat",
    "merch_long",
    "gender",
    "dob",
    "city",
    "state",
    "zip",
    "lat",
    "long",
    "city_pop",
    "job",
)

LABEL_COLUMN: Final[str] = "is_fraud"

#: The 14 merchant categories of the Sparkov generator (and of the Kaggle files).
CATEGORIES: Final[tuple[str, ...]] = (
    "entertainment",
    "food_dining",
    "gas_transport",
    "grocery_net",
    "grocery_pos",
    "health_fitness",
    "home",
    "kids_pets",
    "misc_net",
    "misc_pos",
    "personal_care",
    "shopping_net",
    "shopping_pos",
    "travel",
)

GENDERS: Final[tuple[str, ...]] = ("F", "M")

"""Readers for the Kaggle schema and the real-time feed, row validation and card tokenisation."""

from __future__ import annotations

from fraud_core.data.errors import DataFormatError
from fraud_core.data.readers import check_raw_columns, parse_realtime_payload, read_raw, records_to_raw
from fraud_core.data.tokens import card_token, mask_card, tokenise
from fraud_core.data.validation import (
    EventWindow,
    NormalisedBatch,
    Rejection,
    coerce_canonical_dtypes,
    load_canonical,
    normalise_card_text,
    to_canonical,
)

__all__ = [
    "EventWindow",
    "normalise_card_text",
    "DataFormatError",
    "NormalisedBatch",
    "Rejection",
    "card_token",
    "check_raw_columns",
    "coerce_canonical_dtypes",
    "load_canonical",
    "mask_card",
    "parse_realtime_payload",
    "read_raw",
    "records_to_raw",
    "to_canonical",
    "tokenise",
]

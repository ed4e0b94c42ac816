"""Card tokenisation: the clear card number never leaves the reader.

``card_id`` is HMAC-SHA256 of the card number under the configured key, so the same card always gets
the same token (features need the card's history) while the number cannot be recovered without the
key. ``card_last4`` is kept for display, as on any receipt.
"""

from __future__ import annotations

import hashlib
import hmac

import pandas as pd


def card_token(cc_num: str | int, key: str) -> str:
    """The keyed token of one card number.

    Args:
        cc_num: the card number, digits only (an int is accepted).
        key: the card-token key (``CARD_TOKEN_KEY``).

    Returns:
        64 lowercase hex characters.
    """
    return hmac.new(key.encode(), str(cc_num).encode(), hashlib.sha256).hexdigest()


def tokenise(cc_nums: pd.Series, key: str) -> pd.Series:
    """Tokenise a column of card numbers (as digit strings), hashing each distinct card once."""
    uniques = pd.unique(cc_nums)
    mapping = {value: card_token(value, key) for value in uniques}
    return cc_nums.map(mapping).astype("str")


def last4(cc_nums: pd.Series) -> pd.Series:
    """The last four digits of each card number (as digit strings)."""
    return cc_nums.str[-4:].astype("str")


def mask_card(last4_digits: str | None) -> str:
    """How a card is shown anywhere a person can see it."""
    return f"**** {last4_digits}" if last4_digits else "****"

"""Shadow scoring: the challenger scores the same features as the champion, in the same transaction.

While a version of the registered model holds the ``challenger`` alias, the live flow scores every
transaction with it too and stores the score beside the champion's (``predictions.role =
'challenger'``); nothing is routed or alerted on a challenger's score, so the Performance view
compares like with like.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from sqlmodel import Session

from fraud_core.db.models import ScoringRole
from fraud_core.db.repository import insert_predictions
from fraud_core.ml.champion import ChallengerHolder, get_challenger_holder
from fraud_core.pipeline import batch_scoring


def shadow_score(
    feature_frame: pd.DataFrame,
    transactions: pd.DataFrame,
    *,
    session: Session,
    received_at: datetime,
    holder: ChallengerHolder | None = None,
) -> int:
    """Score a batch with the challenger, if there is one, and store the scores (role ``challenger``).

    Meant to sit right after the champion's scoring in the live flow, in the same transaction, on
    the same feature frame: the two scores of a transaction are then always comparable. Nothing is
    routed or alerted on a challenger's score.

    Args:
        feature_frame: the features the champion was scored on.
        transactions: the canonical transactions, aligned with ``feature_frame``.
        session: the caller's session; not committed here.
        received_at: when the pipeline received the batch (for the latency column).
        holder: defaults to the process-wide :func:`get_challenger_holder`.

    Returns:
        How many challenger scores were stored (0 without a challenger).
    """
    model = (holder or get_challenger_holder()).current()
    if model is None or transactions.empty:
        return 0
    rows = batch_scoring.predict(
        feature_frame,
        transactions,
        model=model,
        received_at=received_at,
        reasons=0,
        role=ScoringRole.CHALLENGER.value,
    )
    return insert_predictions(rows, session=session)

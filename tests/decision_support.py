"""A small stored history for decisioning tests: eight transactions whose figures are counted by hand."""

from __future__ import annotations

import pandas as pd
from sqlalchemy.engine import Engine


def stored_history(engine: Engine) -> pd.DataFrame:
    """Eight transactions on two days: amounts, categories, labels and stored scores chosen by hand."""
    from fraud_core.db import repository, session_scope

    base = {
        "card_last4": "1234",
        "merch_lat": 40.0,
        "merch_long": -73.0,
        "gender": "F",
        "dob": pd.Timestamp("1980-01-01"),
        "city": "X",
        "state": "NY",
        "zip": "10001",
        "lat": 40.0,
        "long": -73.0,
        "city_pop": 1000,
        "job": "J",
    }
    rows = [
        # trans_num, card, day, amount, category, label, score
        ("t1", "a", 1, 900.0, "shopping_net", 1, 0.9),  # fraud, model reviewed
        ("t2", "a", 1, 850.0, "shopping_net", 1, 0.1),  # fraud the model missed
        ("t3", "b", 1, 950.0, "shopping_net", 0, 0.2),  # legit hit
        ("t4", "b", 1, 20.0, "shopping_net", 1, 0.05),  # fraud, not a hit
        ("t5", "c", 2, 990.0, "travel", None, 0.3),  # unlabelled, not a hit (category)
        ("t6", "c", 2, 1200.0, "shopping_net", None, None),  # unlabelled hit, never scored
        ("t7", "d", 2, 30.0, "grocery_pos", 0, 0.01),
        ("t8", "d", 3, 880.0, "shopping_net", 0, 0.4),  # outside the period (day 3)
    ]
    frame = pd.DataFrame(
        [
            {
                **base,
                "trans_num": t,
                "card_id": card * 64,
                "event_time": pd.Timestamp("2020-03-01") + pd.Timedelta(days=day - 1, hours=10, minutes=i),
                "amount": amount,
                "category": category,
                "merchant": f"m_{t}",
            }
            for i, (t, card, day, amount, category, _, _) in enumerate(rows)
        ]
    )
    labels = pd.DataFrame([{"trans_num": t, "is_fraud": label} for t, *_, label, _ in rows if label is not None])
    scores = pd.DataFrame(
        [
            {
                "trans_num": t,
                "model_version": "1",
                "score": score,
                "threshold": 0.5,
                "decision": score >= 0.5,
                "risk_level": "low",
            }
            for t, *_, score in rows
            if score is not None
        ]
    )
    with session_scope(engine) as session:
        repository.insert_transactions(frame, session=session, source="test")
        repository.upsert_labels(labels, session=session, origin="import")
        repository.insert_predictions(scores, session=session)
    return frame

"""The warehouse: engine and sessions, SQLModel tables, repository functions and migrations.

Typical use::

    from fraud_core.db import make_engine, session_scope, repository

    engine = make_engine()                      # DATABASE_URL
    with session_scope(engine) as session:      # one transaction, committed on success
        repository.insert_transactions(frame, session=session, source="feed")
"""

from __future__ import annotations

from fraud_core.db.engine import make_engine, ping, session_scope, shared_engine

__all__ = ["make_engine", "ping", "session_scope", "shared_engine"]

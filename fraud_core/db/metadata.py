"""The metadata Alembic compares against: ``SQLModel.metadata`` once the tables are imported."""

from __future__ import annotations

from sqlalchemy import MetaData


def target_metadata() -> MetaData:
    """Import the table models and return the metadata they registered on."""
    from sqlmodel import SQLModel

    import fraud_core.db.models  # noqa: F401  (registers the tables)

    return SQLModel.metadata

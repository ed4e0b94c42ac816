"""The metadata Alembic compares against: ``SQLModel.metadata`` once the tables are imported."""

from __future__ import annotations

import importlib

from sqlalchemy import MetaData
from sqlmodel import SQLModel

#: Modules that define table models. A new table module goes here so migrations see it.
TABLE_MODULES: tuple[str, ...] = ("fraud_core.db.models",)


def target_metadata() -> MetaData:
    """Import the table models and return the metadata they registered on."""

    for name in TABLE_MODULES:
        importlib.import_module(name)
    return SQLModel.metadata

"""Alembic migrations of the warehouse (run them with :mod:`fraud_core.db.migrate`)."""

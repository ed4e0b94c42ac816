"""The ``fraud-detector`` command line: thin adapters over :mod:`fraud_core` and the servers."""

from __future__ import annotations

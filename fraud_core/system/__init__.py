"""Framework-free helpers for running the whole system (``fraud-detector up``, the image, benchmarks)."""

from __future__ import annotations

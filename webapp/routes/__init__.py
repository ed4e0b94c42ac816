"""REST controllers: ``/predict``, ``/health``, ``/model``."""

from __future__ import annotations

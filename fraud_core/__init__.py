"""The fraud-detection domain: settings, warehouse, features, models, quality checks and alerts.

This package knows nothing of Prefect, Litestar or Panel; flows, routes and dashboard views are
adapters that call into it.
"""

from __future__ import annotations

__version__ = "0.1.0"

"""The Panel dashboard, mounted in the web app at ``/dashboard/``."""

from __future__ import annotations

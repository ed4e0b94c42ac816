"""``fraud-detector source``: replays a Kaggle-schema file as a live HTTP transaction feed.

The feed releases transactions in event-time order at a steady pace, serves them after an opaque
cursor (without labels), serves the labels once a delay has passed, and also answers in the
real-time format (``/current-transactions``). The whole system therefore runs offline and can be
pointed at a real feed by changing ``API_URL``.
"""

from __future__ import annotations

from simulator.app import create_app
from simulator.faults import FaultInjector
from simulator.feed import ReplayFeed
from simulator.server import BackgroundServer

__all__ = ["BackgroundServer", "FaultInjector", "ReplayFeed", "create_app"]

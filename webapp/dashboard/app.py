"""The dashboard page: five tabs (Live, Performance, Explore, Review queue, Quality).

:func:`make_dashboard_page` returns the per-session factory that Panel calls for every browser
session; each session gets its own views (their state is per user) over the app's shared engine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

import panel as pn

from fraud_core.pipeline.dashboard import DashboardData
from webapp.dashboard.views import ExploreView, LiveView, PerformanceView, QualityView, ReviewView


def make_dashboard_page(data: DashboardData, *, live_refresh_seconds: float = 3.0) -> Callable[[], Any]:
    """The per-session page factory.

    Args:
        data: the dashboard's reads and actions over the app's warehouse.
        live_refresh_seconds: how often the Live tab refreshes by itself.
    """

    def page() -> Any:
        pn.extension("tabulator", notifications=False)
        live = LiveView(data, refresh_seconds=live_refresh_seconds)
        performance = PerformanceView(data)
        explore = ExploreView(data)
        review = ReviewView(data)
        quality = QualityView(data)
        tabs = pn.Tabs(
            ("Live", live),
            ("Performance", performance),
            ("Explore", explore),
            ("Review queue", review),
            ("Quality", quality),
            dynamic=False,
            sizing_mode="stretch_width",
        )

        async def first_load() -> None:
            today = await asyncio.to_thread(data.today)
            performance.set_default_window(today, days=30)
            explore.set_default_window(today, days=90)
            await live.refresh()  # what the page opens on comes first
            await asyncio.gather(review.refresh(), quality.refresh(), performance.refresh(), explore.refresh())

        async def tick() -> None:
            await live.refresh()

        async def on_tab(event: Any) -> None:
            # Tabs other than Live refresh when opened, so they are never stale when looked at.
            view = (live, performance, explore, review, quality)[event.new]
            await view.refresh()

        tabs.param.watch(on_tab, "active")
        pn.state.onload(first_load)
        ticker = pn.state.add_periodic_callback(cast(Any, tick), period=int(live_refresh_seconds * 1000))
        # a session whose browser went away stops its refreshes at once, not at the next clean-up
        pn.state.on_session_destroyed(lambda _context: ticker.stop())
        template = pn.template.BootstrapTemplate(
            title="Fraud detector",
            main=[tabs],
            header_background="#1f3a5f",
            collapsed_sidebar=True,
        )
        return template

    return page

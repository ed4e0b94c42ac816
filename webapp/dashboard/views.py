"""The dashboard's views, one :class:`panel.viewable.Viewer` each, fed by :class:`DashboardData`.

Habits: widgets come from ``param`` state (``from_param``); a refresh updates the panes' objects
instead of rebuilding the layout; queries run in a worker thread (``asyncio.to_thread``) and only
the widget updates happen on the server's loop. Card numbers are never here: only ``**** 1234``.
"""

from __future__ import annotations

import asyncio
import html
import logging
from datetime import date, datetime, timedelta
from typing import Any, cast

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models import ColumnDataSource, FactorRange, HoverTool, Range1d
from bokeh.plotting import figure

from fraud_core.pipeline.dashboard import DashboardData, default_window
from webapp.dashboard.metrics import pr_curves, shadow_comparison, threshold_metrics

log = logging.getLogger(__name__)

_TABLE_KW: dict[str, Any] = {
    "disabled": True,
    "show_index": False,
    "sizing_mode": "stretch_width",
    "layout": "fit_data_stretch",
    "theme": "bootstrap5",
}
_COLORS = {"fraud": "#c0392b", "legit": "#2471a3"}


def _fmt_pct(value: float | None) -> str:
    return "n/a" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.2%}"


def _kpi_card(key: str, title: str, value: str, note: str = "") -> str:
    return (
        f'<div class="kpi" data-kpi="{key}" style="display:inline-block;min-width:170px;margin:4px 12px 4px 0;'
        f'padding:10px 14px;border:1px solid #d0d7de;border-radius:6px;background:#f8f9fa">'
        f'<div style="font-size:12px;color:#57606a">{html.escape(title)}</div>'
        f'<div class="kpi-value" style="font-size:26px;font-weight:600">{html.escape(value)}</div>'
        f'<div style="font-size:11px;color:#57606a">{html.escape(note)}</div></div>'
    )


class _Refreshing(pn.viewable.Viewer):
    """A view that loads its data off the event loop and shows the last error instead of crashing."""

    status = param.String(default="", doc="Loading or error message shown under the title.")

    def __init__(self, data: DashboardData, **params: Any) -> None:
        super().__init__(**params)
        self.data = data
        self._status = pn.pane.Markdown(self.param.status, styles={"color": "#8a6d3b"}, margin=(0, 10))
        self._busy = False

    async def refresh(self) -> None:
        if self._busy:
            return
        self._busy = True
        try:
            loaded = await asyncio.to_thread(self.load)
            self.render(loaded)
            self.status = ""
        except Exception as exc:  # a dashboard must keep running when one query fails
            log.exception("dashboard view %s failed to refresh", type(self).__name__)
            self.status = f"Could not load data: {type(exc).__name__}"
        finally:
            self._busy = False

    def load(self) -> Any:
        raise NotImplementedError

    def render(self, loaded: Any) -> None:
        raise NotImplementedError


class LiveView(_Refreshing):
    """Today's KPIs and the latest scored transactions, refreshed every few seconds."""

    refresh_seconds = param.Number(default=3.0, bounds=(1.0, 60.0))

    def __init__(self, data: DashboardData, **params: Any) -> None:
        super().__init__(data, **params)
        self._kpis = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["live-kpis"])
        self._latest = pn.widgets.Tabulator(pd.DataFrame(), height=520, css_classes=["live-latest"], **_TABLE_KW)
        self._updated = pn.pane.Markdown("", margin=(0, 10))

    def load(self) -> Any:
        return self.data.live()

    def render(self, snapshot: Any) -> None:
        k = snapshot.kpis
        if k is None:
            self._kpis.object = _kpi_card("transactions", "Transactions today", "0", "no transaction stored yet")
        else:
            day = snapshot.day.isoformat()
            self._kpis.object = "".join(
                [
                    _kpi_card("transactions", "Transactions today", f"{k.transactions:,}", f"{day} (UTC)"),
                    _kpi_card("flagged", "Flagged", f"{k.flagged:,}", f"of {k.scored:,} scored"),
                    _kpi_card("alert_rate", "Alert rate", _fmt_pct(k.alert_rate), "flagged / scored"),
                    _kpi_card(
                        "fraud_rate",
                        "Fraud rate (labels)",
                        _fmt_pct(k.fraud_rate),
                        f"{k.fraud:,} of {k.labelled:,} labelled",
                    ),
                ]
            )
        frame = snapshot.latest
        if not frame.empty:
            frame = frame.assign(decision=np.where(frame["decision"], "FLAGGED", "ok"))[
                [
                    "event_time",
                    "card",
                    "amount",
                    "category",
                    "merchant",
                    "score",
                    "decision",
                    "model_version",
                    "trans_num",
                ]
            ]
        self._latest.value = frame
        self._updated.object = f"Updated {datetime.now().strftime('%H:%M:%S')} (every {self.refresh_seconds:g} s)"

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(
            pn.pane.Markdown("### Live scoring"),
            self._kpis,
            self._status,
            pn.pane.Markdown("#### Latest scored transactions"),
            self._latest,
            self._updated,
            sizing_mode="stretch_width",
        )


class _Windowed(_Refreshing):
    """A view over a window of event time, chosen with two date pickers."""

    start = param.Date(default=None, doc="First day (UTC)")
    end = param.Date(default=None, doc="Last day (UTC, inclusive)")

    def __init__(self, data: DashboardData, **params: Any) -> None:
        super().__init__(data, **params)
        self._start = pn.widgets.DatePicker.from_param(self.param.start, name="From", width=150)
        self._end = pn.widgets.DatePicker.from_param(self.param.end, name="To", width=150)
        self._apply = pn.widgets.Button(name="Apply", button_type="primary", width=90, align="end")
        self._apply.on_click(self._on_apply)
        self._initialised = False

    async def _on_apply(self, _: Any) -> None:
        await self.refresh()

    def set_default_window(self, today: date | None, days: int) -> None:
        window = default_window(today, days)
        if window is not None and not self._initialised:
            self.start = window[0].date()
            self.end = (window[1] - timedelta(days=1)).date()
            self._initialised = True

    def window(self) -> tuple[datetime | None, datetime | None]:
        start = datetime.combine(self.start, datetime.min.time()) if self.start else None
        end = datetime.combine(self.end + timedelta(days=1), datetime.min.time()) if self.end else None
        return start, end

    def controls(self) -> pn.Row:
        return pn.Row(self._start, self._end, self._apply)


class PerformanceView(_Windowed):
    """Precision, recall and F1 at the threshold, PR curves and confusion matrices, per model version."""

    def __init__(self, data: DashboardData, **params: Any) -> None:
        super().__init__(data, **params)
        self._metrics = pn.widgets.Tabulator(pd.DataFrame(), css_classes=["perf-metrics"], **_TABLE_KW)
        self._shadow = pn.widgets.Tabulator(pd.DataFrame(), **_TABLE_KW)
        self._shadow_box = pn.Column(pn.pane.Markdown("#### Champion vs challenger (shadow scores)"), self._shadow)
        self._shadow_box.visible = False
        self._curve = pn.pane.Bokeh(self._empty_curve(), sizing_mode="stretch_width")
        self._summary = pn.pane.Markdown("")

    @staticmethod
    def _empty_curve() -> Any:
        fig = figure(
            height=360,
            title="Precision-recall",
            x_range=Range1d(start=0, end=1),
            y_range=Range1d(start=0, end=1.02),
            sizing_mode="stretch_width",
        )
        fig.xaxis.axis_label = "Recall"
        fig.yaxis.axis_label = "Precision"
        return fig

    def load(self) -> Any:
        start, end = self.window()
        return self.data.labelled_predictions(start, end)

    def render(self, frame: pd.DataFrame) -> None:
        metrics = threshold_metrics(frame)
        self._metrics.value = metrics.round(4)
        self._summary.object = (
            f"{len(frame):,} labelled scores in the window."
            if not frame.empty
            else "No labelled transaction in this window yet: metrics appear once labels arrive."
        )
        fig = self._empty_curve()
        palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]
        for i, (name, (recall, precision, ap)) in enumerate(pr_curves(frame).items()):
            fig.line(
                recall, precision, line_width=2, color=palette[i % len(palette)], legend_label=f"{name} AP={ap:.3f}"
            )
        if fig.legend:
            fig.legend.location = "bottom_left"
        self._curve.object = fig
        shadow = shadow_comparison(frame)
        self._shadow.value = shadow.round(4)
        self._shadow_box.visible = not shadow.empty

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(
            pn.pane.Markdown("### Model performance on labelled transactions"),
            self.controls(),
            self._status,
            self._summary,
            pn.pane.Markdown("#### At each version's threshold (confusion matrix: tp, fp, fn, tn)"),
            self._metrics,
            self._shadow_box,
            self._curve,
            sizing_mode="stretch_width",
        )


class ExploreView(_Windowed):
    """Amounts of fraud vs legit, fraud rate by category, hour and state, volume over time."""

    def __init__(self, data: DashboardData, **params: Any) -> None:
        super().__init__(data, **params)
        self._amounts = pn.pane.Bokeh(sizing_mode="stretch_width")
        self._category = pn.pane.Bokeh(sizing_mode="stretch_width")
        self._hour = pn.pane.Bokeh(sizing_mode="stretch_width")
        self._state = pn.pane.Bokeh(sizing_mode="stretch_width")
        self._volume = pn.pane.Bokeh(sizing_mode="stretch_width")

    def load(self) -> Any:
        start, end = self.window()
        return self.data.explore(start, end)

    @staticmethod
    def _rate_chart(frame: pd.DataFrame, key: str, title: str) -> Any:
        labels = [str(v) for v in frame[key]] if not frame.empty else []
        fig = figure(
            x_range=FactorRange(factors=labels), height=300, title=title, sizing_mode="stretch_width", tools=""
        )
        if not frame.empty:
            source = ColumnDataSource(
                {"x": labels, "rate": frame["fraud_rate"].fillna(0.0), "n": frame["labelled"], "fraud": frame["fraud"]}
            )
            fig.vbar(x="x", top="rate", width=0.8, source=source, color=_COLORS["fraud"])
            fig.add_tools(HoverTool(tooltips=[("", "@x"), ("fraud rate", "@rate{0.00%}"), ("labelled", "@n")]))
        fig.xaxis.major_label_orientation = 0.9 if len(labels) > 12 else 0.0
        fig.yaxis.axis_label = "Fraud rate"
        return fig

    def render(self, loaded: dict[str, pd.DataFrame]) -> None:
        amounts = loaded["amounts"]
        bins = [
            f"{lo:g}-{hi:g}" if np.isfinite(hi) else f"{lo:g}+"
            for lo, hi in amounts[["bin_low", "bin_high"]].drop_duplicates().itertuples(index=False)
        ]
        fig = figure(
            x_range=FactorRange(factors=bins),
            height=300,
            title="Amount ($): share of fraud vs legit",
            sizing_mode="stretch_width",
            tools="",
        )
        for offset, name in ((-0.2, "fraud"), (0.2, "legit")):
            part = amounts[amounts["label"] == name]
            xs = [(b, offset) for b in bins]
            _ = xs
            fig.vbar(x=bins, top=part["share"].to_numpy(), width=0.4, color=_COLORS[name], alpha=0.6, legend_label=name)
        fig.legend.location = "top_right"
        self._amounts.object = fig
        self._category.object = self._rate_chart(loaded["category"], "category", "Fraud rate by category")
        self._hour.object = self._rate_chart(loaded["hour"], "hour", "Fraud rate by hour (UTC)")
        self._state.object = self._rate_chart(loaded["state"], "state", "Fraud rate by state")
        volume = loaded["volume"]
        vfig = figure(x_axis_type="datetime", height=300, title="Transactions per day", sizing_mode="stretch_width")
        if not volume.empty:
            vfig.line(
                volume["period"].to_numpy(),
                volume["transactions"].to_numpy(),
                line_width=2,
                legend_label="transactions",
            )
            vfig.scatter(
                volume["period"].to_numpy(),
                volume["fraud"].to_numpy(),
                color=_COLORS["fraud"],
                legend_label="fraud (labelled)",
            )
            vfig.legend.location = "top_left"
        self._volume.object = vfig

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(
            pn.pane.Markdown("### Explore"),
            self.controls(),
            self._status,
            pn.Row(self._amounts, self._category, sizing_mode="stretch_width"),
            pn.Row(self._hour, self._state, sizing_mode="stretch_width"),
            self._volume,
            sizing_mode="stretch_width",
        )


class ReviewView(_Refreshing):
    """Flagged transactions without a verdict; one click stores the analyst's verdict as a label."""

    analyst = param.String(default="analyst", doc="Name stored with each verdict")

    def __init__(self, data: DashboardData, **params: Any) -> None:
        super().__init__(data, **params)
        self._analyst = pn.widgets.TextInput.from_param(self.param.analyst, name="Analyst", width=200)
        self._queue = pn.widgets.Tabulator(
            pd.DataFrame(),
            buttons={
                "fraud": '<span class="verdict verdict-fraud" title="Mark as fraud">Fraud</span>',
                "legit": '<span class="verdict verdict-legit" title="Mark as legitimate">Legitimate</span>',
            },
            height=520,
            css_classes=["review-queue"],
            **_TABLE_KW,
        )
        self._queue.on_click(cast(Any, self._on_click))  # Panel runs async callbacks; its hint says sync
        self._message = pn.pane.Markdown("", css_classes=["review-message"])

    def load(self) -> Any:
        return self.data.review_queue()

    def render(self, frame: pd.DataFrame) -> None:
        if not frame.empty:
            reasons = frame["reasons"].map(_reason_text)
            frame = frame.assign(reasons=reasons)[
                [
                    "trans_num",
                    "event_time",
                    "card",
                    "amount",
                    "category",
                    "merchant",
                    "state",
                    "score",
                    "risk_level",
                    "reasons",
                ]
            ]
        self._queue.value = frame
        if frame.empty:
            self._message.object = "No flagged transaction awaits a verdict."

    async def _on_click(self, event: Any) -> None:
        if event.column not in ("fraud", "legit"):
            return
        frame = self._queue.value
        if frame is None or event.row is None or event.row >= len(frame):
            return
        trans_num = str(frame.iloc[event.row]["trans_num"])
        is_fraud = event.column == "fraud"
        analyst = (self.analyst or "analyst").strip()[:128] or "analyst"
        try:
            await asyncio.to_thread(self.data.record_verdict, trans_num, is_fraud, analyst=analyst)
        except Exception as exc:
            log.exception("could not store the verdict on %s", trans_num)
            self._message.object = f"Could not store the verdict: {type(exc).__name__}"
            return
        self._message.object = (
            f"Stored: {trans_num} is {'fraud' if is_fraud else 'legitimate'} (by {html.escape(analyst)})."
        )
        await self.refresh()

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(
            pn.pane.Markdown("### Review queue: flagged, awaiting a verdict"),
            self._analyst,
            self._message,
            self._status,
            self._queue,
            sizing_mode="stretch_width",
        )


def _reason_text(reasons: Any) -> str:
    if not isinstance(reasons, list):
        return ""
    parts = []
    for item in reasons[:3]:
        if isinstance(item, dict):
            value = item.get("value")
            shown = f"{value:.4g}" if isinstance(value, float) else str(value)
            parts.append(f"{item.get('feature')}={shown}")
    return "; ".join(parts)


class QualityView(_Refreshing):
    """The latest data-quality report, or an empty state."""

    def __init__(self, data: DashboardData, **params: Any) -> None:
        super().__init__(data, **params)
        self._header = pn.pane.HTML("", css_classes=["quality-header"])
        self._report = pn.pane.Markdown("", sizing_mode="stretch_width")

    def load(self) -> Any:
        return self.data.quality()

    def render(self, report: Any) -> None:
        if report.created_at is None:
            self._header.object = (
                '<div data-quality="empty">No quality report yet. The weekly quality flow writes one.</div>'
            )
            self._report.object = ""
            return
        colour = {"pass": "#1e8449", "warn": "#b9770e", "fail": "#c0392b"}.get(report.status or "", "#555")
        self._header.object = (
            f'<div data-quality="{html.escape(report.status or "")}"><b style="color:{colour};font-size:18px">'
            f"{html.escape((report.status or '').upper())}</b> report of {report.created_at:%Y-%m-%d %H:%M} UTC, "
            f"window {report.window_start:%Y-%m-%d} to {report.window_end:%Y-%m-%d}</div>"
        )
        self._report.object = report.markdown or "\n".join(f"* {c}" for c in report.checks)

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(pn.pane.Markdown("### Data quality"), self._status, self._header, self._report)

"""``fraud-detector source``: serve a Kaggle-schema file as a live transaction feed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fraud_cli.errors import UserError

#: The bundled sample (whole card histories) replayed when no ``--data`` is given.
BUNDLED_SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "fraud_sample.parquet"


def source(
    data: Annotated[
        Path | None,
        typer.Option("--data", help="CSV or Parquet file in the Kaggle schema (default: the bundled sample)"),
    ] = None,
    port: Annotated[int, typer.Option(help="port to listen on")] = 8100,
    host: Annotated[str, typer.Option(help="interface to listen on (loopback unless you mean it)")] = "127.0.0.1",
    rate: Annotated[
        float, typer.Option("--rate", min=0.0, help="transactions released per second (0: all at once)")
    ] = 10.0,
    label_delay: Annotated[
        float, typer.Option("--label-delay", min=0.0, help="seconds between a transaction's release and its label's")
    ] = 60.0,
    shift_to_now: Annotated[
        bool,
        typer.Option(
            "--shift-to-now", help="move event times by whole weeks so they look current (hour and weekday stay true)"
        ),
    ] = False,
) -> None:
    """Replay a dataset as a live feed: GET /transactions, /labels, /current-transactions."""
    # imported when the command runs: `fraud-detector --help` stays fast
    from simulator import ReplayFeed, create_app
    from simulator.server import serve

    path = data if data is not None else BUNDLED_SAMPLE
    if data is None and not path.exists():
        raise UserError("no --data given and the bundled sample is missing")
    feed = ReplayFeed.from_path(path, rate=rate, label_delay=label_delay, shift_to_now=shift_to_now)
    pace = f"{rate:g} tx/s" if rate else "all at once"
    shift = f", event times +{feed.shift_weeks} weeks" if shift_to_now else ""
    typer.echo(
        f"source: {feed.total:,} transactions from {path.name}, {pace}, labels after {label_delay:g} s{shift}; "
        f"listening on http://{host}:{port}",
        err=True,
    )
    serve(create_app(feed), host=host, port=port)


def register(app: typer.Typer) -> None:
    """Add ``source`` to the ``fraud-detector`` command."""
    app.command("source")(source)

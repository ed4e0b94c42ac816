"""``backfill``: score or re-score a date range in parallel chunks with Prefect's Dask task runner.

The range is cut into chunks of ``settings.flows.backfill_chunk_days``; each chunk is one Dask task
that runs the live path's feature and scoring code on the stored transactions of its range (see
:mod:`fraud_core.pipeline.backfill`), so its scores equal the live ones. By default a local Dask
cluster (one single-threaded process per core) is started for the run and torn down after it;
``PREFECT_FLOWS_DASK_SCHEDULER_ADDRESS=tcp://host:8786`` sends the chunks to a running cluster
instead, whose workers need this package and the same settings (``DATABASE_URL`` ...).

Each chunk pays one card-history query whose cost grows with everything stored before it, so a few
large chunks (two or three per Dask process) beat many small ones: pass ``chunk_days``.

    prefect deployment run 'backfill/backfill' --param start=2020-06-21 --param end=2021-01-01
"""

from __future__ import annotations

import os
import time
from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect_dask import DaskTaskRunner

from fraud_core.pipeline import backfill as steps
from fraud_core.pipeline.backfill import ChunkResult, ModelBundle, plan_chunks
from fraud_core.settings import PrefectSettings, flow_timeout_seconds, get_settings

FLOW_NAME = "backfill"


@task(name="score-chunk", cache_policy=NO_CACHE, persist_result=False, retries=1, retry_delay_seconds=5)
def score_chunk(start: datetime, end: datetime, model: ModelBundle, only_unscored: bool = True) -> ChunkResult:
    """Score one chunk (runs on a Dask worker) and commit its scores."""
    return steps.score_chunk(start, end, model, only_unscored=only_unscored)


def dask_task_runner(settings: PrefectSettings, workers: int | None = None) -> Any:
    """The Dask task runner: the configured scheduler, else a local cluster of ``workers`` processes."""

    if settings.dask_scheduler_address:
        return DaskTaskRunner(address=settings.dask_scheduler_address)
    n_workers = workers or os.cpu_count() or 1
    # One thread per process: pandas and the model hold the GIL, processes give real parallelism.
    return DaskTaskRunner(
        cluster_kwargs={"n_workers": n_workers, "threads_per_worker": 1, "processes": True, "dashboard_address": None}
    )


class ModelHandle:
    """Carries the model's files into the chunks' subflow.

    A subflow's parameters are sent to the Prefect API as JSON; this wrapper (no ``__dict__``, not
    iterable) is stored there as a placeholder instead of the model's bytes.
    """

    __slots__ = ("bundle",)

    def __init__(self, bundle: ModelBundle) -> None:
        self.bundle = bundle


def _importable_chunk_task() -> Any:
    # Not at the top: this is the module importing itself under its package name. A deployment
    # loads this file as a module named "backfill", which Dask workers cannot import; the same task
    # taken from the package module is pickled by a name they can import.
    from flows import backfill as package_module

    return package_module.score_chunk


@flow(name="backfill-chunks", log_prints=False, validate_parameters=False)
def score_chunks(
    chunks: list[tuple[datetime, datetime]], handle: ModelHandle, only_unscored: bool
) -> list[ChunkResult]:
    """Every chunk as a task on the flow's task runner (Dask), in parallel; results in chunk order."""
    chunk_task = _importable_chunk_task()
    futures = [chunk_task.submit(start, end, handle.bundle, only_unscored) for start, end in chunks]
    return [future.result() for future in futures]


def _report(results: list[ChunkResult], *, model: str, seconds: float, where: str) -> str:
    total = sum(r.transactions for r in results)
    scored = sum(r.scored for r in results)
    inserted = sum(r.inserted for r in results)
    rate = scored / seconds if seconds else 0.0
    lines = [
        f"# Backfill with model {model}",
        "",
        f"{len(results)} chunks on {where}: {total:,} transactions, {scored:,} scored, {inserted:,} scores stored, "
        f"{seconds:.1f} s ({rate:,.0f} transactions/s).",
        "",
        "| chunk start | chunk end | transactions | scored | stored | seconds |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {r.start:%Y-%m-%d %H:%M} | {r.end:%Y-%m-%d %H:%M} | {r.transactions:,} | {r.scored:,} | {r.inserted:,} | {r.seconds:.1f} |"
        for r in results
    ]
    return "\n".join(lines)


@flow(name=FLOW_NAME, log_prints=False, timeout_seconds=flow_timeout_seconds("backfill"))
def backfill(
    start: datetime,
    end: datetime,
    chunk_days: float | None = None,
    workers: int | None = None,
    only_unscored: bool = True,
) -> dict[str, Any]:
    """Score the stored transactions with ``start <= event_time < end`` with the champion, chunk by chunk.

    Args:
        start: range start (inclusive; naive means UTC).
        end: range end (exclusive).
        chunk_days: days per chunk; default ``settings.flows.backfill_chunk_days``.
        workers: processes of the local Dask cluster (default: one per core); ignored with a scheduler address.
        only_unscored: skip transactions the champion has scored already (``False`` re-scores all,
            which stores nothing new for the same model version).

    Returns:
        The totals: chunks, transactions, scored, stored, seconds, model version.
    """
    logger = get_run_logger()
    settings = get_settings()
    chunks = plan_chunks(start, end, chunk_days or settings.flows.backfill_chunk_days)
    bundle = steps.champion_bundle()
    runner = dask_task_runner(settings.flows, workers)
    where = (
        settings.flows.dask_scheduler_address
        or f"a local Dask cluster ({runner.cluster_kwargs['n_workers']} processes)"
    )
    logger.info("backfill %s .. %s: %d chunks with model %s on %s", start, end, len(chunks), bundle.ref.version, where)
    began = time.perf_counter()
    results = score_chunks.with_options(task_runner=runner)(chunks, ModelHandle(bundle), only_unscored)
    seconds = time.perf_counter() - began
    create_markdown_artifact(
        key="backfill-summary", markdown=_report(results, model=bundle.ref.version, seconds=seconds, where=where)
    )
    summary = {
        "chunks": len(results),
        "transactions": sum(r.transactions for r in results),
        "scored": sum(r.scored for r in results),
        "stored": sum(r.inserted for r in results),
        "seconds": round(seconds, 3),
        "model_version": bundle.ref.version,
    }
    logger.info("backfill done: %s", summary)
    return summary

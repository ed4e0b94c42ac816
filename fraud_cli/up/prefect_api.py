"""The few Prefect API calls of ``up`` and ``worker``, made with Prefect's own client.

Each function opens a synchronous client (:func:`prefect.client.orchestration.get_client`) on the
API URL it is given, so it does not depend on when ``PREFECT_API_URL`` was read.

Retries are bounded. A local SQLite-backed server answers 503 while its database is locked, and
refuses connections for a moment while it starts; in both cases the server did nothing, so trying
again cannot do anything twice.

* 503 (and 502, 429, 408, read time-outs): Prefect's client tries again after 2 s, then 4 s
  (jittered by 20 %); :data:`MAX_RETRIES` holds its ``PREFECT_CLIENT_MAX_RETRIES`` (5 by default,
  about a minute of back-off) at 2, three attempts in all. With :data:`REQUEST_TIMEOUT_SECONDS` per
  attempt one request waits at most about 40 s before its error is raised. (A timed-out request
  may have been carried out, and Prefect's client sends it again all the same: for the calls here
  a duplicate is harmless; a second first run of ``etl-and-predict`` is cancelled by its
  concurrency limit.)
* A refused connection: httpx retries connecting three times within 1.5 s; Prefect's client
  retries it only once the same client has connected, and each call here opens a fresh client, so
  :func:`call` tries :data:`CONNECT_ATTEMPTS` times in all, :data:`CONNECT_RETRY_SECONDS` apart,
  then twice as long.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterName,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
    WorkPoolFilter,
    WorkPoolFilterName,
)
from prefect.client.schemas.objects import State, StateType, WorkerStatus
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings
from prefect.states import Crashed
from prefect.workers.process import ProcessWorker

T = TypeVar("T")

#: Retries of Prefect's client after a busy answer (503, ...): three attempts in all.
MAX_RETRIES = 2
#: Seconds one request may take (Prefect's default, ``PREFECT_API_REQUEST_TIMEOUT``, is 60).
REQUEST_TIMEOUT_SECONDS = 10.0
#: Attempts when the server refuses connections (it is starting).
CONNECT_ATTEMPTS = 3
#: First pause before connecting again (then twice as long, ...).
CONNECT_RETRY_SECONDS = 2.0
#: Flow-run states that no run can be in once its worker is gone.
ORPHANED_STATES = (StateType.RUNNING, StateType.PENDING, StateType.CANCELLING)


@contextlib.contextmanager
def client(api_url: str) -> Iterator[SyncPrefectClient]:
    """A synchronous Prefect client on ``api_url``, with the bounded retries above."""
    settings = {PREFECT_API_URL: api_url, PREFECT_CLIENT_MAX_RETRIES: MAX_RETRIES}
    with (
        temporary_settings(updates=settings),
        get_client(httpx_settings={"timeout": REQUEST_TIMEOUT_SECONDS}, sync_client=True) as prefect_client,
    ):
        yield prefect_client


def call(api_url: str, request: Callable[[SyncPrefectClient], T]) -> T:
    """Run ``request`` with a client on ``api_url``, connecting again (bounded) while the server refuses.

    Raises:
        httpx.HTTPError: the server kept refusing or kept answering 503, or answered another error.
    """
    for attempt in range(CONNECT_ATTEMPTS):
        try:
            with client(api_url) as prefect_client:
                return request(prefect_client)
        except httpx.ConnectError:
            if attempt == CONNECT_ATTEMPTS - 1:
                raise
        time.sleep(CONNECT_RETRY_SECONDS * (attempt + 1))
    raise AssertionError("unreachable")


def work_pool_exists(api_url: str, name: str) -> bool:
    """Whether the Prefect API has this work pool."""

    def read(prefect_client: SyncPrefectClient) -> bool:
        try:
            prefect_client.read_work_pool(name)
        except ObjectNotFound:
            return False
        return True

    return call(api_url, read)


def create_process_pool(api_url: str, name: str, *, template: dict[str, Any] | None = None) -> None:
    """Create a work pool of type process (its job template the process worker's default).

    A pool created meanwhile by someone else (a second worker starting) is fine.
    """
    job_template = template if template is not None else ProcessWorker.get_default_base_job_template()
    pool = WorkPoolCreate(name=name, type="process", base_job_template=job_template)

    def create(prefect_client: SyncPrefectClient) -> None:
        with contextlib.suppress(ObjectAlreadyExists):
            prefect_client.create_work_pool(pool)

    call(api_url, create)


def online_workers(api_url: str, pool: str) -> list[str]:
    """Names of the pool's workers whose status is ONLINE."""
    workers = call(api_url, lambda prefect_client: prefect_client.read_workers_for_work_pool(pool))
    return [worker.name for worker in workers if worker.status == WorkerStatus.ONLINE]


def crash_orphaned_runs(api_url: str, pool: str) -> list[str]:
    """Mark the pool's runs left RUNNING, PENDING or CANCELLING by an earlier stop as CRASHED.

    Only for a Prefect server that ``up`` itself runs, before its worker starts: no run can be
    alive then. A run killed with its worker (Ctrl-C mid-run) stays RUNNING on the server and holds
    ``etl-and-predict``'s concurrency slot, so every later run would be cancelled. The state is
    proposed, not forced, so that Prefect's rules release the slot.

    Returns:
        The names of the runs marked.
    """
    runs = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=list(ORPHANED_STATES))))
    pools = WorkPoolFilter(name=WorkPoolFilterName(any_=[pool]))

    def crash(prefect_client: SyncPrefectClient) -> list[str]:
        crashed = []
        for run in prefect_client.read_flow_runs(flow_run_filter=runs, work_pool_filter=pools):
            state: State[Any] = Crashed(message="left running when `fraud-detector up` stopped")
            prefect_client.set_flow_run_state(run.id, state, force=False)
            crashed.append(run.name)
        return crashed

    return call(api_url, crash)


def deployment_names(api_url: str) -> list[str]:
    """``flow/deployment`` names of every deployment the API holds."""

    def read(prefect_client: SyncPrefectClient) -> list[str]:
        deployments = prefect_client.read_deployments(limit=200)
        flows = {flow.id: flow.name for flow in prefect_client.read_flows(limit=200)}
        return sorted(f"{flows.get(d.flow_id, '?')}/{d.name}" for d in deployments)

    return call(api_url, read)


def run_deployment_now(api_url: str, name: str) -> str | None:
    """Create a flow run of the deployment called ``name`` (any flow); its id, or None if absent.

    Raises:
        httpx.HTTPError: the server kept refusing (see :func:`call`).
    """
    wanted = DeploymentFilter(name=DeploymentFilterName(any_=[name]))

    def run(prefect_client: SyncPrefectClient) -> str | None:
        found = prefect_client.read_deployments(deployment_filter=wanted, limit=1)
        if not found:
            return None
        return str(prefect_client.create_flow_run_from_deployment(found[0].id, tags=["up"]).id)

    return call(api_url, run)

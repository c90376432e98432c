"""Compare a fresh export with the state machine deployed in AWS, through the DAG's AWS connection.

Uses ``exporters.deploy.diff`` (the ``python -m exporters diff`` logic: the definition the
``live`` alias runs, else the current revision, against the view's export) with boto3 clients made
from the Airflow connection by the Amazon provider's hooks (``StepFunctionHook`` and STS), so
the region, credentials and endpoint are the connection's.

Never a hang: 2 s to connect, 2 s to read, a single attempt per call; a request gets its answer
within ``DEADLINE_SECONDS`` (3 s): the comparison, or "pending" when AWS is slower, while the
comparison goes on in the background and fills the cache. The async routes wait without holding
a thread, one comparison per DAG version runs at a time, and the answer is kept ``CACHE_SECONDS``
so reloading the page does not call AWS again. Never a secret: messages are built here, and anything taken from an AWS
error has the connection's login, password and extra values replaced by ``***``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from exporters import deploy
from exporters.aws_clients import AwsClients
from stepfunctions_ui.admission import stepped_aside

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 2  # per call, inside the 3 s deadline so the answer can name the region
READ_TIMEOUT = 2
DEADLINE_SECONDS = 3  # a request gets the comparison, or "pending", within this
WAIT_SECONDS = DEADLINE_SECONDS - 0.5  # what a request waits for AWS (the rest: auth, DB look-up, rendering)
CACHE_SECONDS = 30
DEFAULT_CONN_ID = "aws_default"

_pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="sfn-compare")
_cache: dict[tuple[Any, ...], tuple[float, Deployed]] = {}
_running: dict[tuple[Any, ...], concurrent.futures.Future] = {}
_regions: dict[tuple[Any, ...], str] = {}  # the region a comparison under way talks to
_generation = 0
_cache_lock = threading.Lock()


@dataclass
class Deployed:
    """The comparison's outcome.

    ``state``: not-exportable, not-connected, not-deployed, in-sync, drift, unreachable, error, or
    pending (AWS had not answered within ``DEADLINE_SECONDS``; the comparison goes on).
    """

    state: str
    message: str
    conn_id: str | None = None
    region: str | None = None
    deployed: str | None = None  # which deployed definition was compared ("name (alias live = version 3)")
    diff: str = ""
    elapsed_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def aws_conn_id_of(dag: Any) -> str:
    """The AWS connection the DAG's stages use (their ``aws_conn_id``), default ``aws_default``."""
    for task in getattr(dag, "tasks", []):
        conn_id = getattr(task, "aws_conn_id", None)
        if conn_id:
            return conn_id
    return DEFAULT_CONN_ID


def compare(view: Any) -> Deployed:
    """The deployed state machine against ``view``'s export (an ``ExportView``); blocks at most ``WAIT_SECONDS``."""
    cached, key, conn_id = _cached(view)
    if cached is not None:
        return cached
    try:
        return _start(view, key, conn_id).result(timeout=WAIT_SECONDS)
    except concurrent.futures.TimeoutError:
        return _pending(conn_id, key)


async def compare_async(view: Any) -> Deployed:
    """``compare`` for the async routes: waits without holding a thread, at most ``WAIT_SECONDS``."""
    cached, key, conn_id = _cached(view)
    if cached is not None:
        return cached
    future = _start(view, key, conn_id)
    try:
        async with stepped_aside():  # the request's admission place goes to others while AWS answers
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), WAIT_SECONDS)
    except TimeoutError:
        return _pending(conn_id, key)


def _cached(view: Any) -> tuple[Deployed | None, tuple[Any, ...], str | None]:
    if not view.exportable:
        return Deployed("not-exportable", "Nothing to compare: the DAG cannot be exported."), (), None
    conn_id = view.aws_conn_id or DEFAULT_CONN_ID
    key = (view.dag_id, view.key, conn_id)
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(key)
        if hit and now - hit[0] < CACHE_SECONDS:
            return hit[1], key, conn_id
    return None, key, conn_id


def _start(view: Any, key: tuple[Any, ...], conn_id: str) -> concurrent.futures.Future:
    """The comparison for ``key`` under way, or a new one (one call to AWS per DAG version at a time).

    Its outcome is cached when it ends, also when no request waited for it any more.
    """
    with _cache_lock:
        future = _running.get(key)
        if future is not None:
            return future
        started, generation = time.perf_counter(), _generation
        future = _pool.submit(_compare, view, conn_id, key)
        _running[key] = future
    # Outside the lock: a comparison already done runs the callback here, and it takes the lock.
    future.add_done_callback(lambda done: _settle(key, done, started, generation))
    return future


def _settle(key: tuple[Any, ...], done: concurrent.futures.Future, started: float, generation: int) -> None:
    with _cache_lock:
        if _running.get(key) is done:
            del _running[key]
        _regions.pop(key, None)
        if done.cancelled() or done.exception() is not None or generation != _generation:
            return
        done.result().elapsed_ms = (time.perf_counter() - started) * 1000
        _cache[key] = (time.monotonic(), done.result())


def _pending(conn_id: str | None, key: tuple[Any, ...]) -> Deployed:
    region = _regions.get(key)
    where = f" in {region}" if region else ""
    return Deployed(
        "pending",
        f"AWS (connection {conn_id!r}{where}) has not answered within {DEADLINE_SECONDS} s; the comparison "
        "goes on in the background: reload in a few seconds.",
        conn_id=conn_id,
        region=region,
    )


def clear_cache() -> None:
    global _generation
    with _cache_lock:
        _cache.clear()
        _generation += 1  # comparisons still under way no longer fill the cache


def _connection(conn_id: str) -> Any | None:
    from airflow.sdk import BaseHook

    try:
        return BaseHook.get_connection(conn_id)
    except Exception:  # noqa: BLE001 - AirflowNotFoundException, or no way to read connections
        return None


def _secrets(conn: Any) -> list[str]:
    values: list[str] = []

    def walk(value: Any, key: str = "") -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, str(k))
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v, key)
        elif isinstance(value, str) and key != "region_name" and len(value) >= 4:
            values.append(value)

    walk(conn.password or "", "password")
    walk(conn.login or "", "login")
    try:
        walk(conn.extra_dejson)
    except Exception:  # noqa: BLE001 - unparsable extra: scrub it whole
        walk(conn.extra or "", "extra")
    return sorted(set(values), key=len, reverse=True)


def scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _compare(view: Any, conn_id: str, key: tuple[Any, ...] = ()) -> Deployed:
    conn = _connection(conn_id)
    if conn is None:
        return Deployed(
            "not-connected",
            f"Not connected to AWS: there is no Airflow connection {conn_id!r}. "
            f"Add one (type aws) to compare this export with the state machine deployed in AWS.",
            conn_id=conn_id,
        )
    if (conn.conn_type or "").lower() != "aws":
        return Deployed(
            "not-connected",
            f"Not connected to AWS: connection {conn_id!r} is of type {conn.conn_type!r}, not aws.",
            conn_id=conn_id,
        )
    secrets = _secrets(conn)
    region: str | None = None
    try:
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
        from airflow.providers.amazon.aws.hooks.step_function import StepFunctionHook
        from botocore.config import Config

        config = Config(
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
            retries={"mode": "standard", "total_max_attempts": 1},
        )
        sfn_hook = StepFunctionHook(aws_conn_id=conn_id, config=config)
        sfn = sfn_hook.conn
        region = sfn.meta.region_name
        _regions[key] = region  # so an answer past the deadline can still name the region
        sts = AwsBaseHook(aws_conn_id=conn_id, client_type="sts", config=config).conn
        return _diff(view, sfn, sts, region, conn_id)
    except Exception as err:  # noqa: BLE001 - every failure becomes a message
        return _failure(err, conn_id, region, secrets)


def _diff(view: Any, sfn: Any, sts: Any, region: str | None, conn_id: str) -> Deployed:
    clients = AwsClients(region=region, overrides={"stepfunctions": sfn, "sts": sts})
    name = deploy.state_machine_name(view.dag_id)
    try:
        result = deploy.diff(clients, view.dag_id, definition=view.definition)
    except deploy.NotDeployed:
        return Deployed(
            "not-deployed",
            f"Not deployed: there is no state machine {name!r} in {region} (account {clients.identity().account}). "
            f"Deploy it with `python -m exporters deploy {view.dag_id}` or the CloudFormation template.",
            conn_id=conn_id,
            region=region,
        )
    if result.code == deploy.NO_DRIFT:
        return Deployed(
            "in-sync",
            f"In sync: the deployed definition ({result.deployed_label}) equals this export.",
            conn_id=conn_id,
            region=region,
            deployed=result.deployed_label,
        )
    return Deployed(
        "drift",
        f"Drift: the deployed definition ({result.deployed_label}) differs from this export. "
        f"Deploy again to update it (`python -m exporters deploy {view.dag_id}`).",
        conn_id=conn_id,
        region=region,
        deployed=result.deployed_label,
        diff=result.text,
    )


def _failure(err: BaseException, conn_id: str, region: str | None, secrets: list[str]) -> Deployed:
    from botocore import exceptions as bx

    where = f" in {region}" if region else ""
    if isinstance(
        err, (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ReadTimeoutError, bx.ConnectionClosedError)
    ):
        return Deployed(
            "unreachable",
            f"AWS is unreachable from the API server (connection {conn_id!r}{where}): no answer within "
            f"{CONNECT_TIMEOUT} s. Nothing was compared.",
            conn_id=conn_id,
            region=region,
        )
    if isinstance(err, bx.NoRegionError):
        return Deployed(
            "error", f"Connection {conn_id!r} has no region: set region_name in its extra.", conn_id=conn_id
        )
    if isinstance(err, (bx.NoCredentialsError, bx.PartialCredentialsError)):
        return Deployed(
            "error", f"Connection {conn_id!r} gives no usable AWS credentials.", conn_id=conn_id, region=region
        )
    if isinstance(err, bx.ClientError):
        code = err.response.get("Error", {}).get("Code", "")
        message = scrub(err.response.get("Error", {}).get("Message", "") or "", secrets)
        return Deployed(
            "error", f"AWS refused the comparison{where}: {code}: {message}", conn_id=conn_id, region=region
        )
    log.warning("Comparing with the deployed state machine failed: %s", type(err).__name__)
    return Deployed(
        "error",
        f"The comparison failed{where}: {type(err).__name__}: {scrub(str(err), secrets)}",
        conn_id=conn_id,
        region=region,
    )

"""The InfluxDB-compatible write API and SQL query server in front of a backend (``mlpulse serve``).

* ``POST /api/v2/write?org=&bucket=&precision=`` (InfluxDB 2) and ``POST /write?db=&precision=``
  (InfluxDB 1): line protocol, optionally gzip; ``Authorization: Token ...`` when a token is set
  (v1 also takes ``?p=``). 204 stored; 400 a line does not parse (nothing stored, the message and
  ``line`` name the first bad line); 401; 404 unknown bucket when buckets are not auto-created;
  413 body over ``max_body_bytes`` after decompression; 422 partial write (lines that conflict
  with stored field types dropped, ``dropped=N``, the rest stored); 429 + ``Retry-After`` when
  more than ``max_inflight_bytes`` of writes are being processed; 503 + ``Retry-After`` when the
  store is failing.
* ``GET|POST /api/v3/query_sql`` (``db``, ``q``, ``format=json|jsonl|csv``), read-only SQL.
* ``GET /health``, ``GET /ping`` (204), ``GET /metrics`` (Prometheus text format).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from tsdb.base import QueryError, StorageError
from tsdb.lineprotocol import PRECISION_NS, LineProtocolError
from tsdb.lineprotocol_columns import parse_columns
from tsdb.server_io import FORMATS, Buckets, HTTPFailure, InflightBytes, read_body, render

log = logging.getLogger("mlpulse.server")
VERSION = "mlpulse-0.1.0"
V1_PRECISION = {"n": "ns", "ns": "ns", "u": "us", "us": "us", "ms": "ms", "s": "s"}


class ServerMetrics:
    """The server's own metrics, on a registry of its own (never the process-global one)."""

    def __init__(self, size: Callable[[], float]):
        self.registry = CollectorRegistry()
        r = self.registry
        self.written = Counter("mlpulse_points_written", "Points stored", registry=r)
        self.rejected = Counter("mlpulse_points_rejected", "Points or lines rejected", ["reason"], registry=r)
        self.requests = Counter("mlpulse_http_requests", "HTTP requests", ["handler", "status"], registry=r)
        self.latency = Histogram(
            "mlpulse_http_request_duration_seconds", "HTTP request latency", ["handler"], registry=r
        )
        self.inflight = Gauge("mlpulse_write_inflight_bytes", "Bytes of writes being processed", registry=r)
        self.db_size = Gauge("mlpulse_database_size_bytes", "Bytes on disk of the store", registry=r)
        self.db_size.set_function(size)


class WriteService:
    """Auth, bucket checks, body reading and ingest for both write endpoints."""

    def __init__(
        self,
        backend,
        *,
        token: str | None,
        max_body_bytes: int,
        max_inflight_bytes: int,
        buckets: Buckets,
        auto_create_buckets: bool,
        metrics: ServerMetrics,
        clock: Callable[[], int] = time.time_ns,
    ):
        self.backend, self.token, self.max_body, self.clock = backend, token, max_body_bytes, clock
        self.budget = InflightBytes(max_inflight_bytes)
        self.buckets, self.auto_create, self.metrics = buckets, auto_create_buckets, metrics

    def check_token(self, request: Request, v1: bool = False) -> None:
        if not self.token:
            return
        given = _token_from(request, v1)
        if given is None or not hmac.compare_digest(given.encode(), self.token.encode()):
            raise HTTPFailure(401, "unauthorized access")

    def check_bucket(self, bucket: str | None) -> str:
        if not bucket:
            raise HTTPFailure(400, "bucket not specified")
        if bucket not in self.buckets:
            if not self.auto_create:
                raise HTTPFailure(404, f'bucket "{bucket}" not found')
            self.buckets.add(bucket)
        return bucket

    async def write(self, request: Request, bucket: str | None, precision: str) -> Response:
        if precision not in PRECISION_NS:
            raise HTTPFailure(400, f"invalid precision {precision!r}; expected ns, us, ms or s")
        self.check_bucket(bucket)
        gzip = request.headers.get("content-encoding", "").lower() == "gzip"
        length = int(request.headers.get("content-length") or 0)
        if not gzip and length > self.max_body:
            raise HTTPFailure(
                413, f"request body of {length} bytes exceeds the limit of {self.max_body} bytes"
            )
        body, charged = await read_body(request.stream(), limit=self.max_body, gzip=gzip, budget=self.budget)
        try:
            return await run_in_threadpool(self._ingest, body, precision, self.clock())
        finally:
            self.budget.release(charged)

    def _ingest(self, body: bytes, precision: str, received_ns: int) -> Response:
        """Parse and store; lines without a timestamp get the time the request arrived."""
        try:
            batch = parse_columns(body, precision=precision, default_time=received_ns)
        except LineProtocolError as e:
            raise self._bad_line(e, 1) from None
        if batch.errors:
            raise self._bad_line(batch.errors[0], len(batch.errors))
        try:
            result = self.backend.write_batch(batch)
        except StorageError as e:
            log.exception("write failed")
            raise HTTPFailure(503, f"store unavailable: {e}", retry_after=5) from None
        self.metrics.written.inc(result.written)
        if result.rejected:
            self.metrics.rejected.labels("conflict").inc(len(result.rejected))
            line, reason = result.rejected[0]
            raise HTTPFailure(
                422, f"partial write: line {line}: {reason} dropped={len(result.rejected)}", line=line
            )
        return Response(status_code=204)

    def _bad_line(self, e: LineProtocolError, count: int) -> HTTPFailure:
        """The 400 for a payload with bad lines (InfluxDB 2 stores none of such a payload)."""
        self.metrics.rejected.labels("parse").inc(count)
        text = f": {e.text!r}" if e.text else ""
        return HTTPFailure(
            400,
            f"unable to parse line {e.line}{text}: {e} ({count} bad line(s); nothing written)",
            line=e.line,
        )


def _token_from(request: Request, v1: bool) -> str | None:
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() in ("token", "bearer") and value:
        return value.strip()
    if v1 and scheme.lower() == "basic" and value:
        import base64

        with contextlib.suppress(ValueError):
            return base64.b64decode(value).decode().partition(":")[2]
    return request.query_params.get("p") if v1 else None


def _failure(e: HTTPFailure) -> JSONResponse:
    return JSONResponse(e.body(), status_code=e.status, headers=e.headers())


def create_app(
    backend,
    *,
    token: str | None = None,
    max_body_bytes: int = 64 * 1024 * 1024,
    max_inflight_bytes: int = 256 * 1024 * 1024,
    auto_create_buckets: bool = True,
    buckets_file: Path | None = None,
    buckets: tuple[str, ...] = (),
    retention_interval_s: float | None = None,
    clock: Callable[[], int] = time.time_ns,
) -> FastAPI:
    """The server app. Buckets are auto-created on first write by default (as Telegraf and
    collectors expect of a local store); pass ``auto_create_buckets=False`` and ``buckets`` to
    refuse unknown names with 404. ``retention_interval_s`` runs the store's hot/cold move."""
    size = getattr(backend, "size_bytes", lambda: 0)
    metrics = ServerMetrics(size)
    service = WriteService(
        backend,
        token=token,
        max_body_bytes=max_body_bytes,
        max_inflight_bytes=max_inflight_bytes,
        buckets=Buckets(buckets_file, buckets),
        auto_create_buckets=auto_create_buckets,
        metrics=metrics,
        clock=clock,
    )
    metrics.inflight.set_function(lambda: service.budget.used)
    app = FastAPI(title="mlpulse", version=VERSION, lifespan=_lifespan(backend, retention_interval_s, clock))
    app.state.service, app.state.metrics = service, metrics
    _add_middleware(app, metrics)
    _add_write_routes(app, service)
    _add_query_routes(app, backend, service)
    _add_status_routes(app, metrics)
    return app


def _lifespan(backend, interval: float | None, clock: Callable[[], int]):
    @contextlib.asynccontextmanager
    async def lifespan(app):
        task = asyncio.create_task(_retention_loop(backend, interval, clock)) if interval else None
        yield
        if task:
            task.cancel()

    return lifespan


async def _retention_loop(backend, interval: float, clock: Callable[[], int]) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            moved = await run_in_threadpool(backend.enforce_retention, clock())
            if any(moved.values()):
                log.info("moved rows to the cold tier: %s", moved)
        except Exception:
            log.exception("retention run failed")


class _Observe:
    """Pure ASGI middleware timing every request (no body buffering, unlike ``@app.middleware``)."""

    def __init__(self, app, metrics: ServerMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), [500]

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            handler = getattr(scope.get("route"), "path", "other")
            self.metrics.latency.labels(handler).observe(time.perf_counter() - start)
            self.metrics.requests.labels(handler, str(status[0])).inc()


def _add_middleware(app: FastAPI, metrics: ServerMetrics) -> None:
    app.add_middleware(_Observe, metrics=metrics)

    @app.exception_handler(HTTPFailure)
    async def failure(request: Request, e: HTTPFailure):
        return _failure(e)


def _add_write_routes(app: FastAPI, service: WriteService) -> None:
    @app.post("/api/v2/write", status_code=204)
    async def write_v2(
        request: Request, bucket: str | None = None, org: str | None = None, precision: str = "ns"
    ):
        service.check_token(request)
        return await service.write(request, bucket, precision)

    @app.post("/write", status_code=204)
    async def write_v1(request: Request, db: str | None = None, precision: str = "ns"):
        service.check_token(request, v1=True)
        if precision not in V1_PRECISION:
            raise HTTPFailure(400, f"invalid precision {precision!r}; expected n, u, ms or s")
        return await service.write(request, db, V1_PRECISION[precision])


async def _query_params(request: Request) -> dict:
    params = dict(request.query_params)
    if request.method == "POST":
        body = await request.body()
        if body:
            try:
                params.update(await request.json())
            except ValueError:
                raise HTTPFailure(
                    400, 'query body must be JSON: {"db": ..., "q": ..., "format": ...}'
                ) from None
    return params


def _add_query_routes(app: FastAPI, backend, service: WriteService) -> None:
    @app.api_route("/api/v3/query_sql", methods=["GET", "POST"])
    async def query_sql(request: Request):
        service.check_token(request)
        params = await _query_params(request)
        q, db, fmt = params.get("q"), params.get("db"), params.get("format", "json")
        if not q:
            raise HTTPFailure(400, "missing query parameter 'q'")
        if fmt not in FORMATS:
            raise HTTPFailure(400, f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
        if db and db not in service.buckets:
            raise HTTPFailure(404, f'database "{db}" not found')
        try:
            table = await run_in_threadpool(backend.sql_arrow, q)
        except QueryError as e:
            raise HTTPFailure(400, f"query failed: {e}") from None
        return Response(render(table, fmt), media_type=FORMATS[fmt])


def _add_status_routes(app: FastAPI, metrics: ServerMetrics) -> None:
    @app.get("/health")
    async def health():
        return {
            "name": "mlpulse",
            "message": "ready for queries and writes",
            "status": "pass",
            "checks": [],
            "version": VERSION,
            "commit": "",
        }

    @app.get("/ping")
    @app.head("/ping")
    async def ping():
        return Response(status_code=204, headers={"X-Influxdb-Version": VERSION, "X-Influxdb-Build": "OSS"})

    @app.get("/metrics")
    async def prometheus_metrics():
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

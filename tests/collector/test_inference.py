"""Inference aggregation: exact quantiles, error classes, predictions; the ASGI middleware in a
real FastAPI app (httpx.ASGITransport), the WSGI middleware behind a real wsgiref server, and
the whole path into a real ``mlpulse serve``."""

from __future__ import annotations

import json
import threading
from wsgiref.simple_server import WSGIRequestHandler, make_server

import httpx
import numpy as np
import pytest
from fastapi import FastAPI, HTTPException
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.inference import ASGIInferenceMiddleware, InferenceAggregator, WSGIInferenceMiddleware
from collector.sink import Sink
from tests.support.servers import MlpulseServer
from tsdb.base import RangeQuery
from tsdb.point import validate


class FakeClock:
    def __init__(self, t: int = 1_700_000_000 * 10**9):
        self.t = t

    def __call__(self) -> int:
        return self.t


def test_aggregates_per_key_with_exact_quantiles():
    clock = FakeClock()
    agg = InferenceAggregator(clock=clock)
    lat = np.arange(1, 201) / 1000.0
    for i, v in enumerate(lat):
        agg.record(model="resnet", version="2", endpoint="/predict", latency_s=float(v),
                   status=[200, 200, 404, 503][i % 4], prediction=float(i % 10))
    agg.record(model="resnet", version="", endpoint="/health", latency_s=0.001)
    points = {p.tags["endpoint"]: p for p in agg.flush()}
    f = points["/predict"].fields
    ms = lat * 1000
    assert (f["requests"], f["errors"], f["errors_4xx"], f["errors_5xx"]) == (200, 100, 50, 50)
    assert f["latency_ms_p50"] == pytest.approx(np.percentile(ms, 50))
    assert f["latency_ms_p99"] == pytest.approx(np.percentile(ms, 99))
    assert (f["latency_ms_max"], f["latency_ms_mean"]) == (pytest.approx(200.0), pytest.approx(100.5))
    assert f["pred_mean"] == pytest.approx(4.5) and f["pred_std"] == pytest.approx(np.std(np.arange(200) % 10))
    assert points["/health"].tags == {"model": "resnet", "endpoint": "/health"}  # empty version left out
    assert points["/predict"].time == clock.t
    assert agg.flush() == []  # the interval was reset


def test_class_labels_and_nonfinite_predictions():
    agg = InferenceAggregator(clock=FakeClock())
    agg.record(model="m", latency_s=0.01, prediction=["cat", "dog", "cat", True])
    agg.record(model="m", latency_s=0.01, prediction=np.array([[0.5, float("nan")]]))
    (p,) = agg.flush()
    validate(p)
    f = p.fields
    assert (f["pred_class_cat"], f["pred_class_dog"], f["pred_class_true"], f["pred_class_nonfinite"]) == (2, 1, 1, 1)
    assert f["pred_count"] == 1 and f["pred_mean"] == 0.5


@given(st.lists(st.floats(0, 60, allow_nan=False), min_size=1, max_size=300), st.integers(5, 50))
@settings(max_examples=50, deadline=None)
def test_quantiles_are_ordered_and_bounded_with_a_reservoir(latencies, cap):
    agg = InferenceAggregator(clock=FakeClock(), max_samples=cap)
    for v in latencies:
        agg.record(model="m", latency_s=v)
    (p,) = agg.flush()
    f = p.fields
    lo, hi = min(latencies) * 1000, max(latencies) * 1000
    assert f["requests"] == len(latencies) and f["latency_ms_max"] == pytest.approx(hi)
    assert lo - 1e-6 <= f["latency_ms_p50"] <= f["latency_ms_p90"] <= f["latency_ms_p99"] <= hi + 1e-6
    assert f["latency_ms_mean"] == pytest.approx(sum(latencies) * 1000 / len(latencies))


def test_decorator_and_context_manager():
    agg = InferenceAggregator(clock=FakeClock())

    @agg.instrument(model="iris", version="1", prediction=lambda r: r["label"])
    def classify(x):
        if x < 0:
            raise ValueError("negative")
        return {"label": "setosa" if x < 1 else "virginica"}

    classify(0.5), classify(2.0)
    with pytest.raises(ValueError):
        classify(-1)
    with agg.track("iris", "1", "batch") as t:
        t.predict([0.1, 0.9])
        t.status = 429
    points = {p.tags["endpoint"]: p.fields for p in agg.flush()}
    assert points["classify"]["requests"] == 3 and points["classify"]["errors_5xx"] == 1
    assert (points["classify"]["pred_class_setosa"], points["classify"]["pred_class_virginica"]) == (1, 1)
    assert points["batch"]["errors_4xx"] == 1 and points["batch"]["pred_mean"] == pytest.approx(0.5)


def make_app() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/models/{name}:predict")
    async def predict(name: str, body: dict):
        if name != "resnet":
            raise HTTPException(404, "no such model")
        return {"predictions": [x * 2 for x in body["instances"]]}

    @app.get("/boom")
    async def boom():
        raise RuntimeError("bug")

    return app


async def _drive_asgi(agg):
    app = ASGIInferenceMiddleware(make_app(), agg, model=lambda scope: scope.get("path_params", {}).get("name", "-"),
                                  version="7", prediction=lambda body: json.loads(body)["predictions"])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for i in range(5):
            r = await client.post("/v1/models/resnet:predict", json={"instances": [i, i + 1]})
            assert r.status_code == 200
        assert (await client.post("/v1/models/other:predict", json={"instances": [1]})).status_code == 404
        assert (await client.post("/v1/models/resnet:predict", json={"wrong": 1})).status_code in (422, 500)
        assert (await client.get("/boom")).status_code == 500


@pytest.mark.timeout(30)
def test_asgi_middleware_in_a_real_fastapi_app():
    import asyncio

    agg = InferenceAggregator(clock=FakeClock())
    asyncio.run(_drive_asgi(agg))
    points = {(p.tags["model"], p.tags["endpoint"]): p.fields for p in agg.flush()}
    ok = points[("resnet", "/v1/models/{name}:predict")]
    assert ok["requests"] == 6 and ok["errors"] == 1
    assert ok["pred_count"] == 10 and ok["pred_mean"] == pytest.approx(np.mean([2 * x for i in range(5) for x in (i, i + 1)]))
    assert points[("other", "/v1/models/{name}:predict")]["errors_4xx"] == 1
    assert points[("-", "/boom")]["errors_5xx"] == 1


def wsgi_app(environ, start_response):
    if environ["PATH_INFO"] == "/predict":
        n = int(environ.get("CONTENT_LENGTH") or 0)
        xs = json.loads(environ["wsgi.input"].read(n))["instances"]
        body = json.dumps({"predictions": ["pos" if x > 0 else "neg" for x in xs]}).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    start_response("400 Bad Request", [("Content-Type", "text/plain")])
    return [b"bad"]


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


@pytest.mark.timeout(30)
def test_wsgi_middleware_behind_a_real_wsgiref_server():
    agg = InferenceAggregator(clock=FakeClock())
    app = WSGIInferenceMiddleware(wsgi_app, agg, model="sentiment", version="3",
                                  prediction=lambda b: json.loads(b)["predictions"])
    server = make_server("127.0.0.1", 0, app, handler_class=Quiet)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with httpx.Client(base_url=url) as client:
            for xs in ([1, -1], [2], [-3, -4]):
                assert client.post("/predict", json={"instances": xs}).status_code == 200
            assert client.get("/other").status_code == 400
    finally:
        server.shutdown()
        server.server_close()
    points = {p.tags["endpoint"]: p.fields for p in agg.flush()}
    assert points["/predict"]["requests"] == 3 and points["/predict"]["pred_class_pos"] == 2
    assert points["/predict"]["pred_class_neg"] == 3 and points["/predict"]["latency_ms_max"] > 0
    assert points["/other"]["errors_4xx"] == 1


@pytest.mark.timeout(90)
def test_inference_points_reach_mlpulse_serve(tmp_path):
    server = MlpulseServer(tmp_path / "data").start()
    clock = FakeClock()
    try:
        with Sink(server.url, bucket="b") as sink:
            agg = InferenceAggregator(sink, clock=clock)
            for step in range(3):
                for i in range(20):
                    agg.record(model="resnet", version="2", endpoint="/predict", latency_s=0.01 * (i + 1),
                               status=500 if i == 0 else 200, prediction=i / 20)
                agg.flush()
                clock.t += 10 * 10**9
    finally:
        server.stop()
    from tsdb.duckdb import DuckDBBackend

    b = DuckDBBackend(tmp_path / "data")
    try:
        df = b.query(RangeQuery("inference", 0, 2**62, fields=["requests", "errors", "latency_ms_p99"]))
    finally:
        b.close()
    assert list(df["requests"]) == [20, 20, 20] and list(df["errors"]) == [1, 1, 1]
    assert df["latency_ms_p99"].iloc[0] == pytest.approx(np.percentile(np.arange(1, 21) * 10.0, 99))

"""A small reference model server: serves a Keras model from a TensorFlow-Serving-layout
repository (``ROOT/<model>/<version>/model.keras``) over TF Serving's REST predict API.

Version choice follows TF Serving: the versions pinned by ``models.config``
(``model_version_policy { specific { versions: N } }``) when that file names the model, else
the newest version. Like ``--model_config_file_poll_wait_seconds``, the file is polled and a
changed pin is loaded without a restart. Non-finite predictions are answered with HTTP 500
(a broken model must show up as errors, not as NaN sent to a caller).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from serving.modelsconfig import read_pins
from serving.repository import ModelRepository

log = logging.getLogger("mlpulse.demo.model_server")


@dataclass
class Loaded:
    version: int
    model: object  # keras.Model


class ModelServer:
    """Holds the loaded version of one model and reloads it when the pin changes."""

    def __init__(self, root: Path, model: str, models_config: Path | None = None, poll_s: float = 0.25):
        self.root, self.model_name = Path(root), model
        self.models_config = Path(models_config) if models_config else None
        self.poll_s = poll_s
        self._lock = threading.Lock()
        self._loaded: Loaded | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- version policy
    def wanted_version(self) -> int:
        if self.models_config and self.models_config.exists():
            pinned = read_pins(self.models_config).get(self.model_name)
            if pinned:
                return max(pinned)
        versions = ModelRepository(self.root).versions(self.model_name)
        if not versions:
            raise FileNotFoundError(f"no versions of model {self.model_name!r} under {self.root}")
        return versions[-1]

    def _load(self, version: int) -> Loaded:
        import keras

        path = self.root / self.model_name / str(version) / "model.keras"
        model = keras.saving.load_model(path, safe_mode=True)
        model.predict_on_batch(np.zeros((1,) + tuple(model.input_shape[1:]), dtype="float32"))  # warm up
        return Loaded(version, model)

    def refresh(self) -> bool:
        """Load the wanted version if it differs from the loaded one; True when it changed."""
        want = self.wanted_version()
        if self._loaded is not None and self._loaded.version == want:
            return False
        loaded = self._load(want)
        with self._lock:
            self._loaded = loaded
        log.info("model %s: serving version %d", self.model_name, want)
        return True

    @property
    def version(self) -> int | None:
        return self._loaded.version if self._loaded else None

    def predict(self, instances: np.ndarray) -> tuple[int, np.ndarray]:
        with self._lock:
            loaded = self._loaded
        if loaded is None:
            raise RuntimeError("no model loaded")
        return loaded.version, np.asarray(loaded.model.predict_on_batch(instances))

    # -- polling, like TF Serving's model_config_file_poll_wait_seconds
    def start(self) -> None:
        self.refresh()
        self._thread = threading.Thread(target=self._poll, name="model-config-poll", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.refresh()
            except Exception as e:  # a bad pin must not take the server down
                log.error("model %s: reload failed, keeping version %s: %s", self.model_name, self.version, e)

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    # -- HTTP
    def app(self) -> Starlette:
        async def predict(request: Request):
            name = request.path_params["name"]
            if name != self.model_name:
                return JSONResponse({"error": f"model {name!r} not found"}, status_code=404)
            try:
                body = await request.json()
                x = np.asarray(body["instances"], dtype="float32")
            except Exception as e:
                return JSONResponse({"error": f"bad request: expected {{'instances': [[...]]}}: {e}"}, 400)
            version, y = self.predict(x)
            request.state.model_version = str(version)
            request.state.predictions = y
            if not np.all(np.isfinite(y)):
                return JSONResponse({"error": f"version {version} produced non-finite predictions"}, 500)
            return JSONResponse({"predictions": y.tolist(), "model_version": version})

        async def status(request: Request):
            return JSONResponse({"model_version_status": [{"version": str(self.version), "state": "AVAILABLE"}]})

        return Starlette(routes=[
            Route("/v1/models/{name}:predict", predict, methods=["POST"]),
            Route("/v1/models/{name}", status, methods=["GET"]),
        ])


def build_app(server: ModelServer, aggregator):
    """The model server's HTTP app behind the inference middleware (per-interval aggregates)."""
    from collector.inference import ASGIInferenceMiddleware

    return ASGIInferenceMiddleware(server.app(), aggregator, model=server.model_name,
                                   version=lambda scope: str(scope.get("state", {}).get("model_version", "")),
                                   endpoint=lambda scope: "predict")


def main(argv: list[str] | None = None) -> None:
    """Run the reference model server as its own process, reporting to an mlpulse write URL."""
    import argparse
    import os
    import socket

    import uvicorn

    from collector import Sink
    from collector.inference import InferenceAggregator

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repo", type=Path, required=True, help="model repository root (TF Serving layout)")
    p.add_argument("--model", required=True)
    p.add_argument("--models-config", type=Path, help="models.config to follow (default: ROOT/models.config)")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--write-url", required=True, help="InfluxDB-compatible write URL for inference metrics")
    p.add_argument("--interval", type=float, default=1.0, help="aggregation interval in seconds")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.INFO, format="model-server %(levelname)s %(message)s")
    server = ModelServer(args.repo, args.model, args.models_config or args.repo / "models.config")
    server.start()
    sink = Sink(args.write_url, bucket="demo", flush_interval=0.25)
    aggregator = InferenceAggregator(sink, interval=args.interval, tags={"host": socket.gethostname()}).start()
    try:
        uvicorn.run(build_app(server, aggregator), host="127.0.0.1", port=args.port, log_level="warning",
                    access_log=False)
    finally:
        aggregator.stop()
        sink.close()
        server.stop()


if __name__ == "__main__":
    main()

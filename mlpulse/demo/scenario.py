"""``mlpulse demo``: the whole loop on the embedded store, with real components only.

1. backfill hours of normal history (served model, training runs, cluster);
2. train the detectors on it (TensorFlow);
3. start the service — the write API server, the scheduler (scoring, rule evaluation,
   collectors), a reference model server for a Keras model in a TF-Serving-layout repository
   and a traffic generator calling it through the inference middleware;
4. inject incidents one after another (a bad model version, a diverging training run, a GPU
   running hot) and follow each through anomaly -> alert -> action/notification -> recovery;
5. print the timeline, write the report, the events as JSON, and keep the data directory.
"""

from __future__ import annotations

import logging
import shutil
import socket
import time
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console

from mlpulse.demo.files import DemoSettings, write_files
from mlpulse.demo.threads import UvicornThread, WebhookReceiver, free_port
from mlpulse.demo.timeline import Incident, Watcher, fill
from mlpulse.types import parse_duration

MODEL = "classifier"
log = logging.getLogger("mlpulse.demo")


def _now() -> datetime:
    return datetime.now(timezone.utc)


MARKER = ".mlpulse-demo"


def prepare_directory(directory: Path) -> None:
    """Empty ``directory`` for a new run, but only if a previous demo made it (it holds the
    marker file) or it is empty: ``--data ~`` must not wipe a home directory."""
    if directory.exists() and any(directory.iterdir()):
        if not (directory / MARKER).exists():
            raise DemoError(f"{directory} is not empty and was not made by `mlpulse demo` (no {MARKER} file); "
                            "choose another --data directory")
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MARKER).write_text("made by `mlpulse demo`; the next demo run empties this directory\n")


class DemoError(RuntimeError):
    """The demo cannot start; the message says why."""


class Demo:
    def __init__(self, directory: Path, settings: DemoSettings, console: Console):
        self.dir, self.s, self.console = Path(directory), settings, console
        self.every_ns = int(parse_duration(settings.every).total_seconds() * 1e9)
        self.host = socket.gethostname()
        self.incidents: list[Incident] = []
        self._stoppers: list = []

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        from mlpulse.config import load_config

        prepare_directory(self.dir)
        self.port, hook_port = free_port(), free_port()
        self.config_path = write_files(self.dir, self.port, hook_port, self.s)
        self.cfg = load_config(self.config_path)
        self.receiver = WebhookReceiver(hook_port).start()
        self._stoppers.append(self.receiver.stop)
        self.say(f"config [bold]{self.config_path}[/] (rules: {self.dir / 'rules.yaml'})")

    def start_store(self) -> None:
        from collector import Sink
        from tsdb.duckdb import DuckDBBackend
        from tsdb.server import create_app

        self.backend = DuckDBBackend.from_config(self.cfg.storage)
        self.server = UvicornThread(create_app(self.backend, buckets_file=self.dir / "buckets.json"), self.port).start()
        self._stoppers.append(self.server.stop)
        self.sink = Sink(self.server.url, bucket="demo", flush_interval=0.25, spool_dir=str(self.dir / "spool"))
        self._stoppers.append(self.sink.close)
        self.say(f"mlpulse serve listening on {self.server.url} (embedded DuckDB store in {self.cfg.storage.path})")

    def start_model_server(self) -> None:
        """The served model runs as its own process, like a real model server, reporting its
        inference metrics through the middleware and a sink to the write API."""
        import subprocess
        import sys

        from mlpulse.demo.models import build_bad, build_good, write_version
        from mlpulse.demo.threads import wait_http
        from serving import ops
        from serving.remediation import build_repository

        self.repo = build_repository(self.cfg.serving)
        write_version(self.repo.root, MODEL, 1, build_good())
        ops.promote(self.repo, MODEL, 1, _now(), reason="initial deploy")
        self.bad_model = build_bad()
        port = free_port()
        log_file = open(self.dir / "model-server.log", "w")
        self.model_proc = subprocess.Popen(
            [sys.executable, "-m", "mlpulse.demo.model_server", "--repo", str(self.repo.root), "--model", MODEL,
             "--models-config", str(self.repo.models_config), "--port", str(port), "--write-url", self.server.url],
            stdout=log_file, stderr=subprocess.STDOUT)
        self._stoppers.append(lambda: (self.model_proc.terminate(), self.model_proc.wait(10), log_file.close()))
        self.model_url = f"http://127.0.0.1:{port}"
        wait_http(f"{self.model_url}/v1/models/{MODEL}", timeout=60)
        self.say(f"model server (own process): {MODEL} version 1 on {self.model_url} "
                 f"(TF Serving layout in {self.repo.root}, follows {self.repo.models_config.name})")

    def served_version(self) -> int | None:
        import httpx

        r = httpx.get(f"{self.model_url}/v1/models/{MODEL}", timeout=5).json()
        return int(r["model_version_status"][0]["version"])

    def start_traffic(self):
        from mlpulse.demo.traffic import Traffic

        self.traffic = Traffic(self.model_url, MODEL, rate_per_s=self.s.traffic_rate, batch=16).start()
        self._stoppers.append(self.traffic.stop)

    # ------------------------------------------------------------------ history
    def calibrate(self, seconds: float = 10.0) -> dict[str, list[float]]:
        """Watch the live v1 server for a few seconds: the history is resampled from what it showed."""
        from tsdb.base import RangeQuery

        t0 = time.time_ns()
        time.sleep(seconds)
        self.sink.flush()
        fields = ["latency_ms_mean", "latency_ms_p50", "latency_ms_p90", "latency_ms_p99", "latency_ms_max", "requests"]
        frame = self.backend.query(RangeQuery("inference", t0, time.time_ns(), fields=fields))
        if len(frame) < 3:
            raise DemoError(f"the model server reported {len(frame)} intervals in {seconds}s; is it running? "
                               f"see {self.dir / 'model-server.log'}")
        calib = {f: frame[f].dropna().tolist() for f in fields if f in frame and frame[f].notna().any()}
        p50 = frame["latency_ms_p50"]
        self.baseline_ms = float(p50.quantile(0.9) * 1.5 + 1.0)
        self.live_start = t0
        self.say(f"calibration: v1 p50 latency {p50.median():.2f} ms over {len(frame)} intervals")
        return calib

    def backfill(self, calib) -> None:
        from mlpulse.demo.simulated import SimulatedGPU, inference_history
        from mlpulse.demo.training import history_runs

        history_ns = int(parse_duration(self.s.history).total_seconds() * 1e9)
        end = self.live_start - self.live_start % self.every_ns
        start = end - history_ns
        tags = {"model": MODEL, "version": "1", "endpoint": "predict", "host": self.host}
        self.gpu = SimulatedGPU(self.host)
        points = inference_history(start, end, self.every_ns, calib, tags) + self.gpu.history(start, end, self.every_ns)
        for i in range(0, len(points), 20_000):
            self.backend.write(points[i : i + 20_000])
        train_start = end - min(history_ns, 3600 * 10**9)
        history_runs(self.sink, train_start, end, self.every_ns)
        self.sink.flush()
        self.say(f"backfilled {len(points):,} inference and GPU points over {self.s.history}, and 2 healthy "
                 "training runs (real Keras fits) over the last hour of it")

    # ------------------------------------------------------------------ service
    def start_service(self) -> None:
        from rich.progress import Progress

        from collector.base import RunningCollector
        from collector.config import NvidiaSmiConfig
        from collector.runner import Runner, build_collectors
        from mlpulse.service import Service

        gpu = NvidiaSmiConfig(type="nvidia_smi", name="gpu-simulated", interval=self.s.every)
        collectors = build_collectors(self.cfg.collect) + [
            RunningCollector(gpu, global_tags={"host": self.host}, factory=lambda cfg, log: self.gpu)]
        runner = Runner(collectors, self.sink)
        self.service = Service(self.cfg, self.backend, config_dir=self.dir, sink=self.sink, collectors=runner)
        with Progress(console=self.console, transient=True) as progress:
            task = progress.add_task("training detectors (TensorFlow)", total=len(self.service.detector_names))
            saved = self.service.train_all(progress=lambda name: progress.advance(task))
        self.say(f"trained {saved} detector models: {', '.join(self.service.detector_names)}")
        self.service.start()
        self._stoppers.append(self.service.stop)
        self.watcher = Watcher(self.backend, self.live_start).start()
        self._stoppers.append(self.watcher.stop)

    # ------------------------------------------------------------------ incidents
    def inject(self, incident: Incident, action) -> Incident:
        from alerting.events import Event

        incident.injected_ns = time.time_ns()
        self.service.recorder.record(Event("incident_injected", _now(), incident.description,
                                           model=MODEL if incident.remediation == "rollback" else "",
                                           extra={"incident": incident.name}))
        self.say(f"[bold red]incident[/] {incident.name}: {incident.description}")
        action()
        self.incidents.append(incident)
        return incident

    def wait_for(self, incident: Incident, done, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.refresh(incident)
            if done(incident):
                return True
            time.sleep(0.5)
        self.say(f"[yellow]{incident.name}: not complete after {timeout:.0f}s[/]")
        return False

    def refresh(self, incident: Incident) -> None:
        fill(incident, self.backend, self.watcher, self.receiver, self.every_ns, time.time_ns() + 10**9,
             good_version=incident.detail.get("good_version"))
        for k in incident.needed():
            if k in incident.stamps and k not in incident.detail.setdefault("_printed", []):
                incident.detail["_printed"].append(k)
                dt = (incident.stamps[k] - incident.injected_ns) / 1e9
                self.say(f"  {incident.name:<20} {k:<18} +{dt:6.2f}s")

    def bad_deploy(self) -> Incident:
        from mlpulse.demo.models import write_version
        from serving import ops

        inc = Incident("bad_deploy", "classifier version 2 deployed (slower, broken weights)",
                       "inference_latency", "ModelLatencyAnomaly", "rollback")
        inc.detail.update(baseline_p50_ms=round(self.baseline_ms, 3), good_version="1", bad_version="2")

        def deploy():
            write_version(self.repo.root, MODEL, 2, self.bad_model)
            ops.promote(self.repo, MODEL, 2, _now(), reason="deploy v2")

        self.inject(inc, deploy)
        self.wait_for(inc, lambda i: "recovered" in i.stamps, self.s.incident_timeout_s)
        inc.detail["served_version_now"] = self.served_version()
        return inc

    def training_divergence(self) -> Incident:
        from mlpulse.demo.training import DivergingRun

        inc = Incident("training_divergence", "a training run's learning rate explodes (loss spikes, then NaN)",
                       "training_loss", "TrainingLossAnomaly", "notify")
        run = DivergingRun(self.sink)
        self.inject(inc, run.start)
        self.wait_for(inc, lambda i: "notified" in i.stamps, self.s.incident_timeout_s)
        run.join(timeout=30)
        self.sink.flush()
        self.wait_for(inc, lambda i: "recovered" in i.stamps, self.s.incident_timeout_s)
        nan = self.receiver_has("TrainingLossNaN", inc.injected_ns)
        inc.detail["nan_alert_notified"] = nan
        return inc

    def gpu_overheat(self) -> Incident:
        inc = Incident("gpu_overheat", "GPU 0 runs 30 degrees hotter than usual (simulated GPU)",
                       "gpu_temperature", "GpuTemperatureAnomaly", "notify")
        self.inject(inc, lambda: self.gpu.overheat(30.0))
        self.wait_for(inc, lambda i: "notified" in i.stamps, self.s.incident_timeout_s)
        self.gpu.cool_down()
        self.wait_for(inc, lambda i: "recovered" in i.stamps, self.s.incident_timeout_s)
        return inc

    def receiver_has(self, alertname: str, after_ns: int) -> bool:
        return any(a.get("labels", {}).get("alertname") == alertname and t >= after_ns for t, a in self.receiver.alerts())

    # ------------------------------------------------------------------ output
    def say(self, text: str) -> None:
        self.console.print(f"[dim]{datetime.now().strftime('%H:%M:%S')}[/] {text}")

    def stop(self) -> None:
        for stop in reversed(self._stoppers):
            try:
                stop()
            except Exception as e:  # keep stopping the rest
                log.warning("stopping %r: %s", stop, e)
        self._stoppers.clear()

    def close_store(self) -> None:
        self.backend.close()

"""docker-compose.yml is consistent (no Docker engine runs here, so it is checked as data):
files and folders it mounts exist, images are pinned, every ${VAR} is in .env.example, ports are
on 127.0.0.1 and unique per profile, depends_on targets run in the same profiles, every service
has a health check, and the configs it mounts load through the real config loader."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(?::?[-?+])[^}]*)?\}")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    pairs = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f".env.example: {line!r} is not KEY=VALUE"
            pairs[key.strip()] = value.strip()
    return pairs


def services(compose: dict) -> dict[str, dict]:
    return compose["services"]


def profiles(compose: dict) -> set[str]:
    return {p for s in services(compose).values() for p in s.get("profiles", [])}


def active(compose: dict, profile: str) -> dict[str, dict]:
    """The services `docker compose --profile PROFILE up` starts."""
    return {n: s for n, s in services(compose).items() if not s.get("profiles") or profile in s["profiles"]}


def test_every_variable_is_defined_in_env_example(compose, env_example):
    used = set(VAR_RE.findall(COMPOSE.read_text()))
    assert used, "the compose file takes its secrets from variables"
    assert used <= set(env_example), f"missing from .env.example: {sorted(used - set(env_example))}"
    assert env_example["COMPOSE_PROFILES"] in profiles(compose)


def test_secrets_stay_out_of_git_and_the_image():
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()
    docker_ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ".env" in docker_ignored and ".venv/" in docker_ignored


def test_images_are_pinned(compose):
    for name, svc in services(compose).items():
        image = svc.get("image")
        assert image or "build" in svc, f"{name}: needs an image or a build"
        if image:
            repo, _, tag = image.rpartition(":")
            assert repo and tag and tag != "latest" and "/" not in tag, (
                f"{name}: image {image!r} is not pinned"
            )
        if "build" in svc:
            assert (ROOT / svc["build"]["context"] / svc["build"]["dockerfile"]).is_file()


def test_dockerfile_copies_only_what_exists():
    for line in (ROOT / "deploy" / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            sources = [s for s in line.split()[1:-1] if not s.startswith("--") and "*" not in s]
            for src in sources:
                assert (ROOT / src).exists(), f"Dockerfile copies missing {src}"


def test_bind_mounts_exist_and_named_volumes_are_declared(compose):
    declared = set(compose.get("volumes") or {})
    for name, svc in services(compose).items():
        for spec in svc.get("volumes", []):
            source = spec.split(":")[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name}: mounts missing {source}"
            else:
                assert source in declared, f"{name}: volume {source!r} is not declared"


@pytest.mark.parametrize("profile", ["influxdb", "victoriametrics"])
def test_ports_are_loopback_and_unique_per_profile(compose, profile):
    seen: dict[str, str] = {}
    for name, svc in active(compose, profile).items():
        for spec in svc.get("ports", []):
            host, port, _container = str(spec).split(":")
            assert host == "127.0.0.1", f"{name}: port {spec} is not bound to 127.0.0.1"
            assert port not in seen, f"{name} and {seen.get(port)} both publish {port}"
            seen[port] = name


@pytest.mark.parametrize("profile", ["influxdb", "victoriametrics"])
def test_dependencies_run_in_the_same_profile(compose, profile):
    running = active(compose, profile)
    for name, svc in running.items():
        for dep in svc.get("depends_on", {}):
            assert dep in running, f"{name} depends on {dep}, which profile {profile} does not start"
            if isinstance(svc["depends_on"], dict):
                assert "healthcheck" in running[dep], f"{name} waits for {dep} to be healthy; it has no check"


def test_every_service_has_a_healthcheck(compose):
    for name, svc in services(compose).items():
        test = svc.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, f"{name}: no health check"


def test_the_store_profiles_are_exclusive(compose):
    assert "influxdb" in active(compose, "influxdb") and "victoriametrics" not in active(compose, "influxdb")
    assert "victoriametrics" in active(compose, "victoriametrics") and "influxdb" not in active(
        compose, "victoriametrics"
    )
    for profile in ("influxdb", "victoriametrics"):
        assert {"grafana", "mlpulse"} <= set(active(compose, profile))
        assert any("collect" in s.get("command", []) for s in active(compose, profile).values())


def test_grafana_datasources_point_at_compose_services(compose):
    folder = ROOT / "dashboards" / "provisioning" / "datasources"
    influx = services(compose)["influxdb"]["environment"]
    for path in folder.glob("*.yaml"):
        data = yaml.safe_load(path.read_text())
        for ds in data["datasources"]:
            host = re.match(r"https?://([^:/]+)", ds["url"]).group(1)
            assert host in services(compose), f"{path.name}: {ds['url']} is not a compose service"
            if ds["type"] == "influxdb":
                assert ds["jsonData"]["organization"] == influx["DOCKER_INFLUXDB_INIT_ORG"]
                assert ds["jsonData"]["defaultBucket"] == influx["DOCKER_INFLUXDB_INIT_BUCKET"]
            for var in VAR_RE.findall(yaml.safe_dump(ds)):  # values only, not comments
                assert var in services(compose)["grafana"]["environment"], (
                    f"grafana needs {var} for {path.name}"
                )


def test_mounted_configs_load_and_match_the_services(compose):
    from mlpulse.config import load_config

    for name, svc in services(compose).items():
        for spec in svc.get("volumes", []):
            source, target = spec.split(":")[:2]
            if target == "/etc/mlpulse/mlpulse.yaml":
                cfg = load_config(ROOT / source)
                store = re.match(r"https?://([^:/]+)", cfg.collect.sink.url).group(1)
                assert store in svc["depends_on"], f"{name}: sink {cfg.collect.sink.url} is not a dependency"
                if cfg.storage.token is not None:
                    assert cfg.storage.token.env in svc["environment"]


def test_commands_are_real_cli_commands(compose):
    from typer.main import get_command

    from mlpulse.cli import build

    known = set(get_command(build()).commands)
    for name, svc in services(compose).items():
        if svc.get("image", "").startswith("mlpulse:"):
            assert svc["command"][0] in known, f"{name}: mlpulse has no command {svc['command'][0]!r}"


@pytest.mark.parametrize("config", ["deploy/mlpulse.influxdb.yaml", "deploy/mlpulse.victoriametrics.yaml"])
def test_the_scheduler_runs_the_detector_measured_on_nab(config):
    """README and the configs say the compose scheduler's inference_latency job is the ensemble
    measured by bench/nab.py: same detector, parameters, scales and checks."""
    import importlib.util

    from mlpulse.config import load_config

    spec = importlib.util.spec_from_file_location("bench_nab", ROOT / "bench" / "nab.py")
    nab = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(nab)
    measured, replay = nab.DETECTORS["ensemble"], nab.REPLAY
    (job,) = [j for j in load_config(ROOT / config).detectors.jobs if j.name == "inference_latency"]
    assert job.type == measured["detector"]
    want = nab.replay_config("ensemble").params
    assert job.params == want, f"{config}: params {job.params} differ from bench/nab.py's {want}"
    assert tuple(job.scales) == tuple(measured["scales"])
    assert (job.spatial_tolerance, job.spatial_mean) == (replay["spatial_tolerance"], replay["spatial_mean"])
    s, want_s = job.seasonal, replay["seasonal"]
    assert (s.period.total_seconds(), s.count, s.smooth) == (86400, want_s["count"], want_s["smooth"])

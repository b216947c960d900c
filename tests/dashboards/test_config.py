"""The ``grafana:`` config section through the project's YAML loader."""

from __future__ import annotations

import pytest

from dashboards.config import GrafanaConfig
from dashboards.grafana import GrafanaClient
from mlpulse.yamlconf import ConfigError, loads_yaml, validate

GOOD = """\
url: http://127.0.0.1:3000
token: {env: GRAFANA_TOKEN}
folder: ML
datasource: {type: prometheus, uid: vm-prod}
timeout: 5s
"""


def _load(text: str) -> GrafanaConfig:
    data, lines = loads_yaml(text, "mlpulse.yaml")
    return validate(GrafanaConfig, data, lines, "mlpulse.yaml")


def test_valid_section():
    cfg = _load(GOOD)
    assert cfg.datasource.type == "prometheus" and cfg.datasource.uid == "vm-prod"
    assert cfg.timeout.total_seconds() == 5 and cfg.annotations == "post"
    assert "GRAFANA_TOKEN" in repr(cfg.token)


def test_errors_are_located_and_all_reported():
    text = GOOD.replace("folder: ML", "foldr: ML").replace("type: prometheus", "type: graphite")
    with pytest.raises(ConfigError) as err:
        _load(text)
    messages = "\n".join(err.value.errors)
    assert "mlpulse.yaml:3: key foldr was not used; typo, or not supported in this version" in messages
    assert "mlpulse.yaml:4:" in messages and "datasource.type" in messages and "prometheus" in messages


def test_token_is_required_and_never_printed(monkeypatch):
    with pytest.raises(ConfigError, match="token: required key is missing"):
        _load("url: http://x\n")
    cfg = _load("url: http://127.0.0.1:1\ntoken: {value: s3cret}\n")
    assert "s3cret" not in repr(cfg) and "s3cret" not in str(cfg)
    client = GrafanaClient.from_config(cfg)
    assert "s3cret" not in repr(client.annotation_hook())
    client.close()


def test_config_is_frozen():
    cfg = _load(GOOD)
    with pytest.raises(Exception):
        cfg.folder = "other"  # type: ignore[misc]

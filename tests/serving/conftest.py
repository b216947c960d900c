from __future__ import annotations

import pytest

from tests.alerting.httpserver import RecordingServer


@pytest.fixture
def http_server():
    with RecordingServer() as server:
        yield server


@pytest.fixture
def repo_root(tmp_path):
    """A TF Serving layout repository: fraud versions 1..4 (4 live, newest), ranker version 1."""
    root = tmp_path / "models"
    for v in (1, 2, 3, 4):
        (root / "fraud" / str(v)).mkdir(parents=True)
        (root / "fraud" / str(v) / "saved_model.pb").write_bytes(b"x")
    (root / "ranker" / "1").mkdir(parents=True)
    return root

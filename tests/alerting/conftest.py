from __future__ import annotations

import pytest

from tests.alerting.httpserver import RecordingServer


@pytest.fixture
def http_server():
    with RecordingServer() as server:
        yield server

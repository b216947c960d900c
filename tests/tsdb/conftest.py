"""The ``backend`` fixture: the contract suite runs once per backend.

* ``duckdb`` — always (embedded store in a temporary directory);
* ``victoriametrics`` — always: a real ``victoria-metrics`` server started on 127.0.0.1
  (``.ci/run`` installs the Debian package); absent binary skips with the reason;
* ``influxdb2`` — only when ``MLPULSE_TEST_INFLUXDB_URL`` and ``MLPULSE_TEST_INFLUXDB_TOKEN`` are set.
"""

from __future__ import annotations

import os
import uuid

import pytest


@pytest.fixture(scope="session")
def vm_url(tmp_path_factory):
    """Base URL of one real victoria-metrics server for the whole session (wiped per test)."""
    from tests.support.victoria import VictoriaServer, VictoriaUnavailable

    try:
        server = VictoriaServer.start(tmp_path_factory.mktemp("victoria"))
    except VictoriaUnavailable as e:
        pytest.skip(f"victoriametrics: {e}")
    yield server.url
    server.stop()


@pytest.fixture(
    params=[
        "duckdb",
        pytest.param("victoriametrics", marks=pytest.mark.external_service),
        pytest.param("influxdb2", marks=pytest.mark.external_service),
    ]
)
def backend(request, tmp_path):
    name = request.param
    if name == "duckdb":
        from tsdb.duckdb import DuckDBBackend

        b = DuckDBBackend(tmp_path / "data")
    elif name == "victoriametrics":
        from tests.support.victoria import wipe
        from tsdb.victoriametrics import VictoriaMetricsBackend

        url = request.getfixturevalue("vm_url")
        wipe(url)
        # it deletes whole series only; the contract's time-range deletes need the rewrite procedure
        b = VictoriaMetricsBackend(url, consistency="read_your_writes", partial_delete="rewrite")
    else:
        url = os.environ.get("MLPULSE_TEST_INFLUXDB_URL")
        token = os.environ.get("MLPULSE_TEST_INFLUXDB_TOKEN")
        if not (url and token):
            pytest.skip("influxdb2: set MLPULSE_TEST_INFLUXDB_URL and MLPULSE_TEST_INFLUXDB_TOKEN to run")
        from tsdb.influxdb2 import InfluxDB2Backend

        # a fresh bucket per test (dropped afterwards), so tests never see each other's points
        prefix = os.environ.get("MLPULSE_TEST_INFLUXDB_BUCKET", "contract")
        b = InfluxDB2Backend(url, token=token, org=os.environ.get("MLPULSE_TEST_INFLUXDB_ORG", "mlpulse"),
                             bucket=f"{prefix}-{uuid.uuid4().hex[:12]}")
        b.ensure_bucket()
    yield b
    if name == "influxdb2":
        b.drop_bucket()
    b.close()

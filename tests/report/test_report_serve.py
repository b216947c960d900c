"""The report reading from a running ``mlpulse serve`` (a real subprocess) over its SQL endpoint."""

from __future__ import annotations

import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

from dashboards.definitions import all_dashboards
from mlpulse.cli import build
from mlpulse.report.serve import ServeReader
from tests.report.sample import events_lp, metrics_lp
from tests.support.servers import MlpulseServer
from tsdb.base import RangeQuery
from tsdb.http import PermanentError

pytestmark = pytest.mark.timeout(120)
TOKEN = "serve-token"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = MlpulseServer(tmp_path_factory.mktemp("serve") / "data", token=TOKEN).start()
    body = (metrics_lp() + "\n" + events_lp()).encode()
    r = httpx.post(srv.url + "/api/v2/write", params={"bucket": "mlpulse", "org": "o"}, content=body,
                   headers={"Authorization": f"Token {TOKEN}"}, timeout=60)
    assert r.status_code == 204, r.text
    yield srv
    srv.stop()


def test_serve_reader_agrees_with_the_embedded_store(server, store, report_range):
    reader = ServeReader(server.url, TOKEN)
    every = 600 * 1_000_000_000
    queries = [q.range_query(*report_range, every) for d in all_dashboards() for q in d.queries()]
    queries.append(RangeQuery("mlpulse_events", *report_range, fields=["message"]))
    try:
        results = [(q, reader.query(q), store.query(q)) for q in queries]
    finally:
        reader.close()
    for q, got, want in results:
        pd.testing.assert_frame_equal(got, want, check_exact=False, obj=f"{q.measurement}.{q.fields}")
    assert sum(len(want) > 0 for _, _, want in results) >= 20


def test_wrong_token_is_refused(server):
    reader = ServeReader(server.url, "wrong")
    with pytest.raises(PermanentError):
        reader.query(RangeQuery("train", 0, 1))
    reader.close()


def test_cli_report_from_serve(server, tmp_path, monkeypatch):
    monkeypatch.setenv("MLPULSE_TEST_SERVE_TOKEN", TOKEN)
    out = tmp_path / "report.html"
    result = CliRunner().invoke(build(), ["report", "--url", server.url, "--token-env", "MLPULSE_TEST_SERVE_TOKEN",
                                          "--since", "3h", "--until", "2025-01-01T12:01:00Z", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "19 panels with data" in result.output and "3 events" in result.output

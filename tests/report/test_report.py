"""The HTML report built from a real DuckDB store (and a real VictoriaMetrics for --url)."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest
from plotly.offline import get_plotlyjs
from typer.testing import CliRunner

from dashboards.model import Dashboard, Panel, Query, Row
from mlpulse.cli import build
from mlpulse.report import build_report, time_range
from mlpulse.report.data import bucket_width, legend, load_events, split_series
from tests.report.sample import EVENTS, metrics_lp

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=timezone.utc)
PANELS_WITH_DATA = 19  # no mem, disk, GPU memory utilization or SM clock in the sample


def plotly_name(name: str) -> str:
    """How plotly writes a trace name into the page (``/`` as ``\\u002f``)."""
    return '"name":"' + name.replace("/", "\\u002f") + '"'


def test_report_has_every_panel_with_data_and_the_events(built):
    html, summary = built
    assert (summary.panels_with_data, summary.panels_without_data, summary.events) == (PANELS_WITH_DATA, 4, 3)
    assert summary.errors == ()
    assert html.count('class="panel"') == PANELS_WITH_DATA + 1  # + the event timeline
    assert "No data in this range for: Memory used, Disk used" in html
    for kind, message, _ in EVENTS:
        assert f"<td>{kind}</td>" in html
    assert "fraud pinned to v1 &lt;ok&gt;" in html  # escaped, never raw HTML


def test_report_series_are_per_model_version_and_gpu(built):
    html, _ = built
    for name in ("p99 fraud/1", "p99 fraud/2", "h1 GPU 0", "h1 GPU 1", "loss fraud/r1",
                 "score conv_ae inference.latency_ms_p99"):
        assert plotly_name(name) in html, name


def test_report_is_self_contained(built):
    html, _ = built
    assert not re.search(r"<script[^>]+src=", html)
    assert not re.search(r"""<link[^>]+href=["']https?:""", html)
    assert get_plotlyjs() in html  # plotly.js itself is inlined
    page = html.replace(get_plotlyjs(), "")
    assert "Plotly.newPlot" in page
    assert re.findall(r"https?://[^\s\"']+", page) == []


def test_events_are_ordered_with_all_columns(store, report_range):
    events = load_events(store, *report_range)
    assert list(events.columns) == ["time", "kind", "rule", "model", "severity", "message"]
    assert list(events["kind"]) == [k for k, _, _ in EVENTS]
    assert events["time"].is_monotonic_increasing


def test_a_failing_query_is_shown_not_fatal(store, report_range):
    broken = Dashboard("mlpulse-broken", "Broken", rows=(Row("r", (
        Panel("Mean of a string", (Query("mlpulse_events", "message", aggregate="mean"),)),
        Panel("Loss", (Query("train", "loss", group_by=("run",), legend="{run}"),)),
    )),))
    html, summary = build_report(store, *report_range, dashboards=[broken])
    assert summary.panels_with_data == 1
    assert len(summary.errors) == 1 and "mlpulse_events.message" in summary.errors[0]
    assert "Mean of a string (mlpulse_events.message:" in html


def test_bucket_width_is_round_and_bounded():
    hour = 3600 * 1_000_000_000
    assert bucket_width(0, 6 * hour) == 120 * 1_000_000_000
    assert bucket_width(0, 60 * 1_000_000_000) == 1_000_000_000
    assert bucket_width(0, 24 * hour) == 300 * 1_000_000_000
    assert (30 * 24 * hour) / bucket_width(0, 30 * 24 * hour) <= 300


def test_legend_and_series_split():
    q = Query("inference", "latency_ms_p99", group_by=("model", "version"), legend="p99 {model}/{version}")
    assert legend(q, {"model": "m"}) == "p99 m/"
    assert legend(Query("cpu", "usage_user"), {"host": "a", "cpu": "c"}) == "usage_user cpu=c host=a"
    t = pd.to_datetime([0, 1, 0], utc=True)
    frame = pd.DataFrame({"time": t, "model": ["m", "m", "m"], "version": ["1", "1", "2"],
                          "latency_ms_p99": [1.0, 2.0, None]})
    series = split_series(frame, q)
    assert [s.name for s in series] == ["p99 m/1"]
    assert list(series[0].values) == [1.0, 2.0]


def test_time_range():
    ns = 1_000_000_000
    end = int(NOW.timestamp()) * ns
    assert time_range("6h", "now", now=NOW) == (end - 6 * 3600 * ns, end)
    assert time_range("2025-01-01T10:00:00Z", "2025-01-01T11:00:00+00:00", now=NOW) == (end - 2 * 3600 * ns, end - 3600 * ns)
    with pytest.raises(ValueError, match="give a timezone"):
        time_range("1h", "2025-01-01T10:00:00", now=NOW)
    with pytest.raises(ValueError, match="not before"):
        time_range("2025-01-01T13:00:00Z", "now", now=NOW)
    with pytest.raises(ValueError, match="expected 'now' or an ISO time"):
        time_range("yesterday", "now", now=NOW)


def test_cli_report_from_data_dir(store_dir, tmp_path):
    out = tmp_path / "r" / "report.html"
    result = CliRunner().invoke(build(), ["report", "--data", str(store_dir), "--since", "3h", "--until",
                                          "2025-01-01T12:01:00Z", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"{PANELS_WITH_DATA} panels with data" in result.output and "3 events" in result.output
    assert out.read_text().startswith("<!DOCTYPE html>")


def test_cli_report_needs_exactly_one_source(tmp_path):
    result = CliRunner().invoke(build(), ["report", "--out", str(tmp_path / "x.html")])
    assert result.exit_code == 2 and "exactly one of --url or --data" in result.output
    assert not (tmp_path / "x.html").exists()


@pytest.mark.external_service
@pytest.mark.timeout(120)
def test_cli_report_from_victoriametrics_url(tmp_path):
    from tests.support.victoria import VictoriaServer, VictoriaUnavailable
    from tsdb.victoriametrics import VictoriaMetricsBackend

    try:
        vm = VictoriaServer.start(tmp_path / "vm")
    except VictoriaUnavailable as e:
        pytest.skip(str(e))
    try:
        backend = VictoriaMetricsBackend(vm.url)
        assert backend.write_lp(metrics_lp()).ok
        backend.close()
        vm.flush()
        out = tmp_path / "report.html"
        result = CliRunner().invoke(build(), ["report", "--url", vm.url, "--backend", "victoriametrics",
                                              "--since", "3h", "--until",
                                              "2025-01-01T12:01:00Z", "--out", str(out)])
    finally:
        vm.stop()
    assert result.exit_code == 0, result.output
    assert int(re.search(r"(\d+) panels with data", result.output).group(1)) >= 15
    assert plotly_name("p99 fraud/2") in Path(out).read_text()

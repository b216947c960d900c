"""Report fixtures: a real embedded DuckDB store holding the sample data set, built once per
module (the report tests only read it)."""

from __future__ import annotations

import pytest

from tests.report.sample import END, events_lp, metrics_lp

REPORT_RANGE = (END - 3 * 3600 * 1_000_000_000, END + 60 * 1_000_000_000)


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    from tsdb.duckdb import DuckDBBackend

    path = tmp_path_factory.mktemp("report") / "data"
    backend = DuckDBBackend(path)
    result = backend.write_lp(metrics_lp() + "\n" + events_lp())
    assert result.ok, result.rejected[:3]
    backend.close()
    return path


@pytest.fixture(scope="module")
def store(store_dir):
    from tsdb.duckdb import DuckDBBackend

    backend = DuckDBBackend(store_dir)
    yield backend
    backend.close()


@pytest.fixture
def report_range():
    return REPORT_RANGE


@pytest.fixture(scope="module")
def built(store):
    """(html, summary) of the report over the sample data."""
    from mlpulse.report import build_report

    return build_report(store, *REPORT_RANGE)

"""Dashboard fixtures: the report's sample data in a real DuckDB store, to compare with."""

from __future__ import annotations

import pytest

from tests.report.sample import events_lp, metrics_lp


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from tsdb.duckdb import DuckDBBackend

    backend = DuckDBBackend(tmp_path_factory.mktemp("duckdb") / "data")
    assert backend.write_lp(metrics_lp() + "\n" + events_lp()).ok
    yield backend
    backend.close()

"""Read the portable query from a running ``mlpulse serve`` through its SQL endpoint.

While ``mlpulse serve`` runs it owns the DuckDB file, so the report cannot open the store
itself. This reader fetches the store's catalog (``mlpulse.columns``) once, turns each
:class:`tsdb.base.RangeQuery` into the same SQL the embedded store runs
(:func:`tsdb.duckdb_query.build_sql`), sends it to ``/api/v3/query_sql`` and gives the result
the portable shape. It implements the reading half of the backend protocol (``query``).
"""

from __future__ import annotations

import httpx
import pandas as pd

from tsdb.base import RangeQuery, empty_frame
from tsdb.duckdb_query import build_sql, shape
from tsdb.duckdb_schema import Column, Measurement
from tsdb.http import from_transport, raise_for_status

CATALOG_SQL = "SELECT measurement, name, kind, lp_type FROM mlpulse.columns ORDER BY ALL"


class ServeReader:
    """Portable queries against ``mlpulse serve`` at ``url`` (token: its API token, if any)."""

    name = "serve"

    def __init__(self, url: str, token: str | None = None, timeout: float = 60.0):
        headers = {"Authorization": f"Token {token}"} if token else {}
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)
        self._catalog: dict[str, Measurement] | None = None

    def _sql(self, text: str) -> list[dict]:
        try:
            response = self._http.post("/api/v3/query_sql", json={"q": text, "format": "json"})
        except httpx.TransportError as e:
            raise from_transport(e, str(self._http.base_url)) from e
        raise_for_status(response)
        return response.json()

    def catalog(self) -> dict[str, Measurement]:
        if self._catalog is None:
            out: dict[str, Measurement] = {}
            for row in self._sql(CATALOG_SQL):
                out.setdefault(row["measurement"], Measurement(row["measurement"])).columns[row["name"]] = \
                    Column(row["kind"], row["lp_type"])
            self._catalog = out
        return self._catalog

    def query(self, q: RangeQuery) -> pd.DataFrame:
        schema = self.catalog().get(q.measurement)
        built = build_sql(q, schema) if schema is not None else None
        if built is None:
            return empty_frame(q.fields if q.fields is not None else (schema.fields if schema else []))
        sql, tags, fields = built
        rows = self._sql(sql)
        return shape(pd.DataFrame(rows, columns=["time", *tags, *fields]), tags, fields, q.every is not None)

    def close(self) -> None:
        self._http.close()

"""InfluxDB 2.x backend: writes through ``influxdb-client``'s write API, the portable query as Flux.

Writes are line protocol strings (never DataFrames: the client escapes null tag values in a
DataFrame wrongly). ``write_mode="synchronous"`` sends each write at once and raises the
:mod:`tsdb.http` error classes, so the collector sink owns retries; ``"batching"`` hands points
to the client's background batcher (batch size, flush interval and retry/backoff settings from
:class:`tsdb.config.WriteOptions`): ``WriteResult.written`` then counts points handed to the
batcher, and batches it gives up on are listed in ``failed_batches`` (and logged).

Queries are Flux (:mod:`tsdb.flux`) answered as annotated CSV, parsed here with nanosecond
times (the client's own record objects only keep microseconds).
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterable
from typing import Literal

import pandas as pd

from tsdb import flux
from tsdb.base import QueryError, RangeQuery, StorageError, WriteResult, empty_frame, write_lp_as_points
from tsdb.http import PermanentError, classify, from_transport
from tsdb.lineprotocol import encode_point
from tsdb.point import Point, PointError

WriteMode = Literal["synchronous", "batching"]
log = logging.getLogger(__name__)
_META = frozenset({"result", "table"})


class InfluxDB2Backend:
    """A :class:`tsdb.base.Backend` on InfluxDB 2.x (or any server speaking its v2 API)."""

    name = "influxdb2"

    def __init__(
        self,
        url: str,
        *,
        token: str,
        org: str,
        bucket: str,
        timeout: float = 30.0,
        write_mode: WriteMode = "synchronous",
        write_options=None,
        client=None,
    ):
        from influxdb_client import InfluxDBClient

        self.org, self.bucket, self.write_mode = org, bucket, write_mode
        self.failed_batches: list[tuple[int, str]] = []  # (lines, error) of batches the batcher gave up on
        self._client = client or InfluxDBClient(url=url, token=token, org=org, timeout=int(timeout * 1000))
        self._write_api = self._client.write_api(**self._write_kwargs(write_mode, write_options))

    @classmethod
    def from_config(cls, cfg) -> InfluxDB2Backend:
        """Build from a :class:`tsdb.config.StorageConfig` (the token is resolved now)."""
        if cfg.token is None:
            raise StorageError("backend influxdb2 needs 'token' ({env: VAR} or {file: PATH})")
        return cls(
            cfg.write_url or cfg.url,
            token=cfg.token.resolve().get(),
            org=cfg.org,
            bucket=cfg.bucket,
            timeout=cfg.timeout.total_seconds(),
            write_mode=cfg.write.mode,
            write_options=cfg.write,
        )

    def _write_kwargs(self, mode: WriteMode, opts) -> dict:
        from influxdb_client.client.write_api import SYNCHRONOUS, WriteOptions, WriteType

        from tsdb.config import WriteOptions as Options

        if mode == "synchronous":
            return {"write_options": SYNCHRONOUS}
        o = opts or Options()
        options = WriteOptions(
            write_type=WriteType.batching,
            batch_size=o.batch_size,
            flush_interval=_ms(o.flush_interval),
            jitter_interval=_ms(o.jitter_interval),
            retry_interval=_ms(o.retry_interval),
            max_retries=o.max_retries,
            max_retry_delay=_ms(o.max_retry_delay),
            max_retry_time=_ms(o.max_retry_time),
            exponential_base=o.exponential_base,
        )
        return {"write_options": options, "error_callback": self._batch_failed}

    def _batch_failed(self, conf, data, exception) -> None:
        lines = data.count(b"\n") + 1 if isinstance(data, bytes) else str(data).count("\n") + 1
        self.failed_batches.append((lines, str(exception)))
        log.error("influxdb2: a batch of %d lines was dropped after retries: %s", lines, exception)

    # ------------------------------------------------------------------ writing

    def write(self, points: Iterable[Point]) -> WriteResult:
        result = WriteResult()
        lines = []
        for i, p in enumerate(points):
            try:
                lines.append(encode_point(p))
            except PointError as e:
                result.rejected.append((i, str(e)))
        if lines:
            self._call(
                lambda: self._write_api.write(self.bucket, self.org, "\n".join(lines), write_precision="ns")
            )
        result.written = len(lines)
        return result

    def write_lp(self, data: bytes | str, *, precision: str = "ns") -> WriteResult:
        return write_lp_as_points(self, data, precision)

    def flush(self) -> None:
        """Send what the batcher holds now (no-op in synchronous mode)."""
        if self.write_mode == "batching":
            self._write_api.flush()

    # ------------------------------------------------------------------ reading

    def query(self, q: RangeQuery) -> pd.DataFrame:
        tables = self._flux_tables(flux.range_query(q, self.bucket))
        rows, fields = wide_rows(tables)
        if not rows:
            return empty_frame(q.fields)
        keep = self.tag_keys(q.measurement) if q.group_by is None or q.every is None else list(q.group_by)
        return shape(rows, keep, q.fields if q.fields is not None else fields, aggregated=q.every is not None)

    def native(self, text: str) -> pd.DataFrame:
        """Run Flux; every table's rows in one frame (``result``/``table`` columns dropped)."""
        frames = [
            pd.DataFrame(t.rows, columns=t.columns).drop(columns=[c for c in _META if c in t.columns])
            for t in self._flux_tables(text)
        ]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def measurements(self) -> list[str]:
        return sorted(self._values(flux.schema_call("measurements", self.bucket)))

    def tag_keys(self, measurement: str) -> list[str]:
        keys = self._values(flux.schema_call("measurementTagKeys", self.bucket, measurement=measurement))
        return sorted(k for k in keys if not k.startswith("_"))

    def tag_values(self, measurement: str, key: str) -> list[str]:
        call = flux.schema_call("measurementTagValues", self.bucket, measurement=measurement, tag=key)
        return sorted(self._values(call))

    def _values(self, text: str) -> list[str]:
        return [row[t.columns.index("_value")] for t in self._flux_tables(text) for row in t.rows]

    def _flux_tables(self, text: str) -> list[Table]:
        raw = self._call(lambda: self._client.query_api().query_raw(text, org=self.org), query=True)
        return parse_annotated_csv(raw if isinstance(raw, str) else raw.data.decode("utf-8"))

    # ------------------------------------------------------------------ admin

    def delete(self, measurement: str, start: int, end: int, where: dict[str, str] | None = None) -> int:
        """Delete through the delete API (its stop is inclusive, so ``end - 1`` ns); count unknown."""
        predicate = flux.delete_predicate(measurement, where)
        start_s, stop_s = flux.time_literal(start), flux.time_literal(end - 1)
        self._call(
            lambda: self._client.delete_api().delete(start_s, stop_s, predicate, self.bucket, self.org)
        )
        return -1

    def ensure_bucket(self, retention_s: int = 0) -> str:
        """Create the organisation and bucket when missing; returns the bucket id."""
        from influxdb_client import BucketRetentionRules

        orgs = self._call(lambda: self._client.organizations_api().find_organizations(org=self.org))
        org = (
            orgs[0]
            if orgs
            else self._call(lambda: self._client.organizations_api().create_organization(self.org))
        )
        found = self._call(lambda: self._client.buckets_api().find_bucket_by_name(self.bucket))
        if found is not None:
            return found.id
        rules = [BucketRetentionRules(type="expire", every_seconds=retention_s)] if retention_s else []
        made = self._call(
            lambda: self._client.buckets_api().create_bucket(
                bucket_name=self.bucket, org_id=org.id, retention_rules=rules
            )
        )
        return made.id

    def drop_bucket(self) -> None:
        """Delete the bucket and every point in it (test and teardown use)."""
        found = self._call(lambda: self._client.buckets_api().find_bucket_by_name(self.bucket))
        if found is not None:
            self._call(lambda: self._client.buckets_api().delete_bucket(found))

    def close(self) -> None:
        self._write_api.close()
        self._client.close()

    def _call(self, fn, query: bool = False):
        """Run a client call, mapping failures to :mod:`tsdb.http` errors (and bad Flux to
        :class:`QueryError`)."""
        from influxdb_client.rest import ApiException
        from urllib3.exceptions import HTTPError as TransportError

        try:
            return fn()
        except ApiException as e:
            err = classify(e.status or 0, e.body, dict(e.headers or {}), None)
            if query and isinstance(err, PermanentError) and e.status == 400:
                raise QueryError(f"influxdb2 refused the query: {err.message}") from e
            raise (err or StorageError(str(e))) from e
        except TransportError as e:
            raise from_transport(e) from e


def _ms(td) -> int:
    return int(td.total_seconds() * 1000)


# ---------------------------------------------------------------------- annotated CSV


class Table:
    """One table of an annotated CSV answer: column names, types, group flags and typed rows."""

    def __init__(self, columns: list[str], types: list[str], group: list[bool]):
        self.columns, self.types, self.group = columns, types, group
        self.rows: list[list] = []


def _typed(value: str, kind: str):
    if value == "":
        return None
    if kind == "double":
        return float(value)
    if kind in ("long", "unsignedLong"):
        return int(value)
    if kind == "boolean":
        return value == "true"
    if kind.startswith("dateTime"):
        return pd.Timestamp(value).value
    return value


def parse_annotated_csv(text: str) -> list[Table]:
    """Tables of an InfluxDB annotated CSV answer; an error table raises :class:`QueryError`."""
    tables: dict[tuple, Table] = {}
    annotations: dict[str, list[str]] = {}
    header: list[str] | None = None
    for row in csv.reader(io.StringIO(text)):
        if not row or all(c == "" for c in row):
            annotations, header = {}, None
        elif row[0].startswith("#"):
            annotations[row[0]], header = row, None
        elif header is None:
            header = row
        else:
            _add_row(tables, annotations, header, row)
    return list(tables.values())


def _add_row(tables: dict, annotations: dict, header: list[str], row: list[str]) -> None:
    types = annotations.get("#datatype", ["string"] * len(header))
    if "error" in header and "reference" in header:
        raise QueryError(f"influxdb2 query failed: {row[header.index('error')]}")
    key = (tuple(header), row[header.index("table")] if "table" in header else "", tuple(types))
    if key not in tables:
        group = [g == "true" for g in annotations.get("#group", ["false"] * len(header))]
        tables[key] = Table(header[1:], types[1:], group[1:])
    t = tables[key]
    defaults = annotations.get("#default", [""] * len(header))[1:]
    t.rows.append([_typed(v or d, k) for v, d, k in zip(row[1:], defaults, t.types)])


def wide_rows(tables: list[Table]) -> tuple[list[dict], list[str]]:
    """Rows ``{tag..., "time", field...}`` of pivoted tables; tags are the group-key columns not
    starting with ``_``, fields the other columns not starting with ``_``."""
    rows: list[dict] = []
    fields: set[str] = set()
    for t in tables:
        names = [c for c, g in zip(t.columns, t.group) if not c.startswith("_") and c not in _META]
        fields.update(
            c for c, g in zip(t.columns, t.group) if not g and not c.startswith("_") and c not in _META
        )
        ti = t.columns.index("_time") if "_time" in t.columns else None
        for r in t.rows:
            d = {c: r[t.columns.index(c)] for c in names}
            d["time"] = r[ti] if ti is not None else None
            rows.append(d)
    return rows, sorted(fields)


def shape(rows: list[dict], tag_keys: list[str], fields, aggregated: bool) -> pd.DataFrame:
    """The portable result shape (see :mod:`tsdb.base`)."""
    frame = pd.DataFrame(rows)
    tags = sorted(set(tag_keys) | ({c for c in frame.columns if c != "time"} - set(fields)))
    out = pd.DataFrame({"time": pd.to_datetime(frame["time"].astype("int64"), unit="ns", utc=True)})
    for k in tags:
        out[k] = frame[k].astype("str") if k in frame else pd.Series([None] * len(frame), dtype="str")
    for f in sorted(fields):
        col = frame[f] if f in frame else pd.Series([float("nan")] * len(frame))
        out[f] = col.astype("float64") if aggregated else col
    out["time"] = out["time"].astype("datetime64[ns, UTC]")
    return out.sort_values([*tags, "time"], kind="stable").reset_index(drop=True)

"""VictoriaMetrics backend: InfluxDB line protocol in, the portable query as MetricsQL out.

Mapping: a line ``m,tag=v f=1 t`` becomes the series ``m_f{tag="v"}`` (VictoriaMetrics' own
InfluxDB mapping), at millisecond resolution, with every value stored as a float64.

URLs: ``write_url`` + ``/write`` and ``query_url`` + ``/api/v1/...``, so a single node is
``url=http://vm:8428`` and a cluster is ``write_url=http://vminsert:8480/insert/0/influx``,
``query_url=http://vmselect:8481/select/0/prometheus`` (deletes go to the matching
``/delete/0/prometheus`` path of vmselect).

Limits, each documented in ``docs/scaling.md`` and raised as a clear error where it matters:

* Times are stored in whole milliseconds; ``every`` must be a whole number of milliseconds.
* Values are float64: integers above 2**53 lose precision, booleans read back as 0.0/1.0, and
  string fields cannot be stored (they are rejected, never silently turned into 0).
* Points of one ``write`` call that share series and millisecond merge field by field (last
  wins), but writing the same series and time again in a later call keeps both samples (there is
  no "last write wins" across writes): aggregates count both and raw reads return the larger.
* ``delete`` removes whole series; a time range that does not cover every matching point is
  refused instead of deleting more than asked, unless ``partial_delete="rewrite"`` (export,
  delete, write back the rest: VictoriaMetrics' documented procedure, not atomic).
* :meth:`measurements` splits metric names at the first separator, so a measurement whose own
  name contains ``_`` is listed by its first part (queries by the full name work).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlencode

import httpx
import numpy as np
import pandas as pd

from tsdb import metricsql as mq
from tsdb.base import QueryError, RangeQuery, StorageError, WriteResult, empty_frame, write_lp_as_points
from tsdb.http import PayloadTooLarge, PermanentError, classify, from_transport
from tsdb.lineprotocol import encode_point
from tsdb.point import Point, PointError, validate

Consistency = Literal["eventual", "read_your_writes"]
PartialDelete = Literal["refuse", "rewrite"]
_ALL_TIME = {"start": "0.001"}  # "0" reads as "not given" (the last day) in VictoriaMetrics


class VictoriaMetricsBackend:
    """A :class:`tsdb.base.Backend` on a VictoriaMetrics single node or cluster."""

    name = "victoriametrics"

    def __init__(
        self,
        url: str | None = None,
        *,
        write_url: str | None = None,
        query_url: str | None = None,
        db: str | None = None,
        timeout: float = 30.0,
        batch_size: int = 5000,
        consistency: Consistency = "eventual",
        partial_delete: PartialDelete = "refuse",
        separator: str = "_",
        client: httpx.Client | None = None,
    ):
        if not (url or (write_url and query_url)):
            raise StorageError("victoriametrics needs 'url' (or both 'write_url' and 'query_url')")
        self.write_url = (write_url or url or "").rstrip("/")
        self.query_url = (query_url or url or "").rstrip("/")
        self.db, self.batch_size, self.consistency, self.separator = db, batch_size, consistency, separator
        self.partial_delete, self.timeout = partial_delete, timeout
        self._http = client or httpx.Client(timeout=timeout)

    @classmethod
    def from_config(cls, cfg) -> VictoriaMetricsBackend:
        """Build from a :class:`tsdb.config.StorageConfig` (``bucket`` becomes the ``db`` label)."""
        return cls(
            cfg.url,
            write_url=cfg.write_url,
            query_url=cfg.query_url,
            db=cfg.bucket,
            timeout=cfg.timeout.total_seconds(),
            batch_size=cfg.write.batch_size,
            partial_delete=cfg.partial_delete,
        )

    # ------------------------------------------------------------------ writing

    def write(self, points: Iterable[Point]) -> WriteResult:
        """Store points. Points of one call that share series and millisecond merge field by field,
        last write wins (across calls VictoriaMetrics keeps both samples; see the module doc)."""
        result = WriteResult()
        merged: dict[tuple, Point] = {}
        for i, p in enumerate(points):
            if self._accept(i, p, result):
                key = (p.series_key(), p.time // mq.NS_PER_MS)
                prev = merged.get(key)
                merged[key] = (
                    p if prev is None else Point(p.measurement, p.tags, {**prev.fields, **p.fields}, p.time)
                )
                result.written += 1
        lines = [encode_point(p, factor=mq.NS_PER_MS, check=False) for p in merged.values()]
        for start in range(0, len(lines), self.batch_size):
            self._post_lines(lines[start : start + self.batch_size])
        if lines and self.consistency == "read_your_writes":
            self.flush()
        return result

    def write_lp(self, data: bytes | str, *, precision: str = "ns") -> WriteResult:
        return write_lp_as_points(self, data, precision)

    def _accept(self, index: int, p: Point, result: WriteResult) -> bool:
        strings = sorted(k for k, v in p.fields.items() if isinstance(v, str))
        if strings:
            reason = f"{p.measurement}: string field(s) {strings}: VictoriaMetrics stores numbers only"
            result.rejected.append((index, reason))
            return False
        try:
            validate(p)
        except PointError as e:
            result.rejected.append((index, str(e)))
            return False
        if p.measurement.startswith("#"):
            result.rejected.append((index, f"measurement {p.measurement!r} starts with '#', a comment"))
            return False
        return True

    def _post_lines(self, lines: list[str]) -> None:
        params = {"precision": "ms", **({"db": self.db} if self.db else {})}
        try:
            self._request("POST", self.write_url + "/write", params=params, content="\n".join(lines).encode())
        except PayloadTooLarge:
            if len(lines) < 2:
                raise
            half = len(lines) // 2
            self._post_lines(lines[:half])
            self._post_lines(lines[half:])

    def flush(self) -> None:
        """Make written samples searchable now (single node: ``/internal/force_flush``)."""
        root = httpx.URL(self.write_url).copy_with(path="/", query=None)
        self._request("GET", str(root).rstrip("/") + "/internal/force_flush")

    # ------------------------------------------------------------------ reading

    def query(self, q: RangeQuery) -> pd.DataFrame:
        names = self._field_metrics(q.measurement, q.fields)
        if not names:
            return empty_frame(q.fields)
        if q.every is None:
            records = self._raw(q, names)
        elif mq.needs_client_merge(q):
            records = self._merged(q, names)
        else:
            records = self._bucketed(q, names)
        keep = self.tag_keys(q.measurement) if q.every is None or q.group_by is None else q.group_by
        return to_frame(records, q.fields, keep)

    def _field_metrics(self, measurement: str, fields) -> dict[str, str]:
        """``{metric name: field}`` for the requested (or every stored) field."""
        prefix = measurement + self.separator
        if fields is not None:
            return {mq.metric_name(measurement, f, self.separator): f for f in fields}
        sel = mq.name_regex_selector(prefix, self._extra_matchers())
        names = self._get_data("/api/v1/label/__name__/values", {"match[]": sel, **_ALL_TIME})
        return {n: n[len(prefix) :] for n in names if n.startswith(prefix)}

    def _raw(self, q: RangeQuery, names: dict[str, str]) -> list[Chunk]:
        lines = self._export(names, q.where_values(), q.start, q.end)
        return raw_records(lines, names, q.start, q.end, self._hidden())

    def _export(self, names: dict[str, str], where: dict[str, list[str]], start: int | None, end: int | None):
        matchers = mq.label_matchers(where, self._extra())
        params: list[tuple[str, str]] = [("match[]", mq.selector(n, matchers)) for n in names]
        params += [("start", _seconds(mq.to_ms(start)) if start is not None else "0")]
        if end is not None:
            params.append(("end", _seconds(mq.to_ms(end))))
        resp = self._request("POST", self.query_url + "/api/v1/export", form=params)
        return [json.loads(line) for line in resp.text.splitlines() if line.strip()]

    def _bucketed(self, q: RangeQuery, names: dict[str, str]) -> list[Chunk]:
        matchers = mq.label_matchers(q.where_values(), self._extra())
        records: list[Chunk] = []
        for name, field in names.items():
            for ev in mq.bucket_plan(q):
                expr = mq.expression(q, mq.selector(name, matchers), ev.window_ms)
                result = self._query_range(expr, ev)
                records += matrix_records(result, field, ev.label_shift_ms, self._hidden())
        return records

    def _merged(self, q: RangeQuery, names: dict[str, str]) -> list[Chunk]:
        raw = self._raw(q, names)
        every_ns = mq.every_ms(q) * mq.NS_PER_MS
        if q.aggregate == "last":
            return grouped_last(raw, q.group_by, every_ns)
        return grouped_quantile(raw, q.group_by, every_ns, q.quantile)

    def _query_range(self, expr: str, ev: mq.Evaluation) -> list[dict]:
        params = {
            "query": expr,
            "start": _seconds(ev.first_ms),
            "end": _seconds(ev.last_ms),
            "step": f"{ev.step_ms}ms",
            "nocache": "1",
        }
        return self._get_data("/api/v1/query_range", params)["result"]

    def native(
        self,
        text: str,
        *,
        start: int | None = None,
        end: int | None = None,
        step: str | None = None,
        time: int | None = None,
    ) -> pd.DataFrame:
        """Run MetricsQL: a range query when ``start``/``end`` (ns) are given, else an instant
        query at ``time`` (ns; the server's now when None). Columns: ``time``, labels, ``value``."""
        if start is not None and end is not None:
            params = {
                "query": text,
                "start": _seconds(mq.to_ms(start)),
                "end": _seconds(mq.to_ms(end)),
                "step": step or "1m",
                "nocache": "1",
            }
            data = self._get_data("/api/v1/query_range", params)
        else:
            params = {"query": text, **({"time": _seconds(mq.to_ms(time))} if time is not None else {})}
            data = self._get_data("/api/v1/query", params)
        return native_frame(data)

    # ------------------------------------------------------------------ metadata

    def measurements(self) -> list[str]:
        params: dict[str, str] = dict(_ALL_TIME)
        if self.db:
            params["match[]"] = "{" + ",".join(self._extra_matchers()) + "}"
        names = self._get_data("/api/v1/label/__name__/values", params)
        return sorted({n.split(self.separator, 1)[0] for n in names if self.separator in n})

    def tag_keys(self, measurement: str) -> list[str]:
        return sorted({k for labels in self._series(measurement) for k in labels})

    def tag_values(self, measurement: str, key: str) -> list[str]:
        return sorted({labels[key] for labels in self._series(measurement) if key in labels})

    def _series(self, measurement: str) -> list[dict[str, str]]:
        """Label sets of the measurement's series (the series API skips deleted series, which the
        label APIs of some versions still list)."""
        sel = mq.name_regex_selector(measurement + self.separator, self._extra_matchers())
        hidden = self._hidden()
        found = self._get_data("/api/v1/series", {"match[]": sel, **_ALL_TIME})
        return [{k: v for k, v in labels.items() if k not in hidden} for labels in found]

    # ------------------------------------------------------------------ deleting

    def delete(self, measurement: str, start: int, end: int, where: dict[str, str] | None = None) -> int:
        """Delete points of ``measurement`` in ``[start, end)`` matching ``where``.

        VictoriaMetrics deletes whole series only. When a matching series also has points outside
        the range, ``partial_delete="refuse"`` raises :class:`StorageError` and deletes nothing;
        ``"rewrite"`` follows VictoriaMetrics' documented procedure (export, delete the series,
        write back the points outside the range), which is not atomic: points written to those
        series while it runs may be lost.
        """
        names = self._field_metrics(measurement, None)
        where_v = {k: [v] for k, v in (where or {}).items()}
        lines = self._export(names, where_v, None, None) if names else []
        hit = {
            ln["metric"]["__name__"]
            for ln in lines
            if any(start <= t * mq.NS_PER_MS < end for t in ln["timestamps"])
        }
        victims = [ln for ln in lines if ln["metric"]["__name__"] in hit]
        samples = self._points_of(victims, measurement, names)  # one field each
        keep = [p for p in samples if not start <= p.time < end]
        if keep and self.partial_delete == "refuse":
            raise StorageError(
                f"victoriametrics deletes whole series only: {len(keep)} of {len(samples)} samples of the "
                f"matching {measurement!r} series lie outside [{start}, {end}); delete the series' full time "
                "range, narrow 'where', or set partial_delete='rewrite'"
            )
        if hit:
            matchers = mq.label_matchers(where_v, self._extra())
            self._delete_series([mq.selector(n, matchers) for n in sorted(hit)])
        if keep:
            self.write(keep)
        return len({(p.series_key(), p.time) for p in samples}) - len(
            {(p.series_key(), p.time) for p in keep}
        )

    def _points_of(self, lines: list[dict], measurement: str, names: dict[str, str]) -> list[Point]:
        hidden = self._hidden()
        return [
            Point(
                measurement,
                {k: v for k, v in ln["metric"].items() if k not in hidden},
                {names[ln["metric"]["__name__"]]: float(v)},
                t * mq.NS_PER_MS,
            )
            for ln in lines
            for t, v in zip(ln["timestamps"], ln["values"])
        ]

    def _delete_series(self, selectors: list[str]) -> None:
        base = self.query_url.replace("/select/", "/delete/", 1)
        self._request(
            "POST", base + "/api/v1/admin/tsdb/delete_series", form=[("match[]", s) for s in selectors]
        )

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------ plumbing

    def _extra(self) -> dict[str, str]:
        return {"db": self.db} if self.db else {}

    def _extra_matchers(self) -> list[str]:
        return mq.label_matchers({}, self._extra())

    def _hidden(self) -> frozenset[str]:
        return frozenset({"__name__", "db"} if self.db else {"__name__"})

    def _get_data(self, path: str, params: dict[str, str]) -> Any:
        resp = self._request("POST", self.query_url + path, form=params)
        body = resp.json()
        if body.get("status") != "success":
            raise QueryError(f"victoriametrics {path}: {body.get('error') or body}")
        return body["data"]

    def _request(self, method: str, url: str, form=None, **kwargs) -> httpx.Response:
        if form is not None:
            kwargs["content"] = urlencode(form).encode()
            kwargs["headers"] = {"Content-Type": "application/x-www-form-urlencoded"}
        try:
            resp = self._http.request(method, url, **kwargs)
        except httpx.TransportError as e:
            raise from_transport(e, url) from e
        err = classify(resp.status_code, resp.content, resp.headers, url)
        if isinstance(err, PermanentError) and resp.status_code in (400, 422) and "/write" not in url:
            raise QueryError(f"victoriametrics refused the query: {err.message}") from err
        if err is not None:
            raise err
        return resp


def _seconds(ms: int) -> str:
    """A VictoriaMetrics time argument (seconds with millisecond decimals)."""
    return f"{ms // 1000}.{ms % 1000:03d}" if ms >= 0 else f"{ms / 1000:.3f}"


# ---------------------------------------------------------------------- result frames


@dataclass(frozen=True)
class Chunk:
    """Samples of one series and one field: ``times`` in ns, ``values`` as float64."""

    tags: dict[str, str]
    field: str
    times: np.ndarray
    values: np.ndarray


def _tags(metric: dict, hidden) -> dict[str, str]:
    return {k: v for k, v in metric.items() if k not in hidden}


def raw_records(lines: list[dict], names: dict[str, str], start: int, end: int, hidden) -> list[Chunk]:
    """Chunks of ``/api/v1/export`` JSON lines, keeping points in ``[start, end)``."""
    out = []
    for line in lines:
        times = np.asarray(line["timestamps"], dtype="int64") * mq.NS_PER_MS
        keep = (times >= start) & (times < end)
        values = np.asarray(line["values"], dtype="float64")[keep]
        out.append(
            Chunk(_tags(line["metric"], hidden), names[line["metric"]["__name__"]], times[keep], values)
        )
    return out


def matrix_records(result: list[dict], field: str, shift_ms: int, hidden) -> list[Chunk]:
    """Chunks of a ``query_range`` matrix, relabelled from evaluation time to bucket start."""
    out = []
    for series in result:
        ts, vs = zip(*series["values"]) if series["values"] else ((), ())
        ms = np.rint(np.asarray(ts, dtype="float64") * 1000).astype("int64") - shift_ms
        out.append(
            Chunk(_tags(series["metric"], hidden), field, ms * mq.NS_PER_MS, np.asarray(vs, dtype="float64"))
        )
    return out


def _series_ids(chunks: list[Chunk], tag_keys: list[str]) -> tuple[list[int], list[tuple]]:
    """A series id per chunk, and the sorted tag tuples (missing tags sort last, like pandas)."""
    idents = [tuple(c.tags.get(k) for k in tag_keys) for c in chunks]
    order = sorted(set(idents), key=lambda t: [(v is None, v or "") for v in t])
    rank = {ident: i for i, ident in enumerate(order)}
    return [rank[i] for i in idents], order


def _field_column(chunks: list[Chunk], sids: list[int], field: str) -> pd.Series:
    parts = [(sid, c) for sid, c in zip(sids, chunks) if c.field == field]
    sid = np.concatenate([np.full(len(c.times), s, dtype="int64") for s, c in parts])
    frame = pd.DataFrame(
        {
            "sid": sid,
            "time": np.concatenate([c.times for _, c in parts]),
            "v": np.concatenate([c.values for _, c in parts]),
        }
    )
    indexed = frame.set_index(["sid", "time"])["v"]
    return indexed.groupby(level=[0, 1]).max() if indexed.index.has_duplicates else indexed


def to_frame(chunks: list[Chunk], fields, keep) -> pd.DataFrame:
    """The portable result shape (see :mod:`tsdb.base`). Samples stored twice at one (series,
    time) collapse to the larger value."""
    chunks = [c for c in chunks if len(c.times)]
    if not chunks:
        return empty_frame(fields)
    tag_keys = sorted(set(keep) | {k for c in chunks for k in c.tags})
    sids, idents = _series_ids(chunks, tag_keys)
    present = sorted({c.field for c in chunks})
    wide = pd.concat({f: _field_column(chunks, sids, f) for f in present}, axis=1).sort_index().reset_index()
    out = pd.DataFrame({"time": pd.to_datetime(wide["time"].to_numpy(), unit="ns", utc=True)})
    sid = wide["sid"].to_numpy()
    for i, k in enumerate(tag_keys):
        out[k] = pd.array(np.asarray([ident[i] for ident in idents], dtype=object)[sid], dtype="str")
    for f in sorted(set(fields) if fields is not None else present):
        out[f] = wide[f].to_numpy(dtype="float64") if f in wide else np.nan
    out["time"] = out["time"].astype("datetime64[ns, UTC]")
    return out


def _bucketed_long(
    chunks: list[Chunk], group_by, every_ns: int
) -> tuple[pd.DataFrame, list[tuple], list[str]]:
    keys = sorted(group_by)
    gids, idents = _series_ids(chunks, keys)
    long = pd.DataFrame(
        {
            "gid": np.concatenate([np.full(len(c.times), g, dtype="int64") for g, c in zip(gids, chunks)]),
            "field": np.concatenate([np.full(len(c.times), c.field, dtype=object) for c in chunks]),
            "time": np.concatenate([c.times for c in chunks]),
            "value": np.concatenate([c.values for c in chunks]),
        }
    )
    long["bucket"] = long["time"] - long["time"] % every_ns
    return long, idents, keys


def grouped_last(chunks: list[Chunk], group_by, every_ns: int) -> list[Chunk]:
    """Per group and bucket, the value of the latest point across the group's series."""
    if not any(len(c.times) for c in chunks):
        return []
    long, idents, keys = _bucketed_long(chunks, group_by, every_ns)
    idx = long.groupby(["gid", "bucket", "field"], sort=False)["time"].idxmax()
    return _chunks_of(long.loc[idx], idents, keys)


def grouped_quantile(chunks: list[Chunk], group_by, every_ns: int, q: float) -> list[Chunk]:
    """Per group and bucket, the quantile (linear interpolation) over every raw point."""
    if not any(len(c.times) for c in chunks):
        return []
    long, idents, keys = _bucketed_long(chunks, group_by, every_ns)
    agg = long.groupby(["gid", "bucket", "field"], sort=False)["value"].quantile(q)
    return _chunks_of(agg.reset_index(), idents, keys)


def _chunks_of(frame: pd.DataFrame, idents: list[tuple], keys: list[str]) -> list[Chunk]:
    out = []
    for (gid, field), part in frame.groupby(["gid", "field"], sort=False):
        tags = {k: v for k, v in zip(keys, idents[gid]) if v is not None}
        out.append(
            Chunk(
                tags, field, part["bucket"].to_numpy(dtype="int64"), part["value"].to_numpy(dtype="float64")
            )
        )
    return out


def native_frame(data: dict) -> pd.DataFrame:
    """A MetricsQL answer as a frame: ``time``, one column per label (sorted), ``value``."""
    kind, result = data["resultType"], data["result"]
    if kind in ("scalar", "string"):
        result = [{"metric": {}, "value": result}]
    rows = []
    for series in result:
        samples = series.get("values") or [series["value"]]
        rows += [{**series["metric"], "time": round(float(t) * 1000), "value": v} for t, v in samples]
    frame = pd.DataFrame(
        rows, columns=["time", "value", *sorted({k for r in rows for k in r} - {"time", "value"})]
    )
    labels = sorted(c for c in frame.columns if c not in ("time", "value"))
    frame["time"] = pd.to_datetime(frame["time"].astype("int64") * mq.NS_PER_MS, unit="ns", utc=True)
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce") if kind != "string" else frame["value"]
    return frame[["time", *labels, "value"]]

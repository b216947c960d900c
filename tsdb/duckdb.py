"""The embedded store: DuckDB, one table per measurement, Arrow batched ingest, SQL queries.

``DuckDBBackend(path)`` keeps ``<path>/store.duckdb`` and the cold tier ``<path>/cold/``;
``path=None`` is an in-memory store (no cold tier). Table layout: :mod:`tsdb.duckdb_schema`.

Writes: a payload is parsed into Arrow tables per measurement (:mod:`tsdb.lineprotocol_columns`),
checked against the schema (new tags/fields add columns, type conflicts reject the lines that
carry them), then inserted in one transaction per write. A write returns only after DuckDB has
committed it to its write-ahead log, so an acknowledged write survives a crash of the process.
By default each commit is also fsynced, so it survives an operating-system crash or power loss
too (as InfluxDB's WAL does). ``fsync=False`` (``mlpulse serve --no-fsync``, ``storage.fsync:
false``) leaves the write-back to the kernel, as Prometheus and VictoriaMetrics do: an
acknowledged write still survives the server being killed, but an OS crash or power loss can
lose the last writes, and DuckDB warns it can then corrupt the database file.

Same measurement + tag set + time: fields merge, last write wins. This is done *at write time*
so the table never holds duplicates and reads stay plain scans: inside a batch duplicates are
collapsed (``arg_max`` by line); against stored rows, a batch whose times are all later than the
measurement's newest stored time (the usual case for monitoring data) is appended directly; a
batch reaching back into the stored range (several writers a little apart) is first checked with
a semi-join, and only a batch that shares a series and time with stored rows pays for an
``UPDATE ... FROM`` plus an anti-joined ``INSERT`` restricted to the batch's time range. An
upsert key (primary key + ``ON CONFLICT``) was not used: DuckDB cannot add key columns later
(new tags) or key on NULL tags, and its ART index costs memory and ingest speed; dedupe-on-read
would make every query pay a ``GROUP BY``.

Thread safety: writes are serialised by a lock; every read runs on its own cursor, and DuckDB's
MVCC gives it a consistent snapshot while writes continue.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Literal

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tsdb.base import QueryError, RangeQuery, StorageError, WriteResult
from tsdb.duckdb_query import query_frame, tag_predicate, time_predicate
from tsdb.duckdb_schema import (
    META_DDL,
    Measurement,
    Plan,
    apply_ddl,
    load_catalog,
    plan_measurement,
    qi,
    updated_catalog,
)
from tsdb.lineprotocol_columns import LINE, TIME, ColumnBatch, Group, columns_from_points, parse_columns
from tsdb.point import Point
from tsdb.retention import ColdTier, cutoffs, view_sql

DB_FILE = "store.duckdb"
FileAccess = Literal["cold-tier", "any"]  # files SQL may read: the store's cold tier only, or any
READ_ONLY_STATEMENTS = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})


class DuckDBBackend:
    """Embedded time-series store; see the module docstring."""

    name = "duckdb"

    def __init__(
        self,
        path: str | Path | None,
        *,
        retention: dict[str, timedelta] | None = None,
        threads: int | None = None,
        clock: Callable[[], int] = time.time_ns,
        file_access: FileAccess = "cold-tier",
        fsync: bool = True,
    ):
        self.path = Path(path) if path is not None else None
        self.fsync = fsync
        self.clock = clock  # ns since the epoch; the time of lines written without a timestamp
        if retention and self.path is None:
            raise ValueError("retention (a cold tier on disk) needs a data directory, not an in-memory store")
        self.retention = dict(retention or {})
        self._lock = threading.RLock()
        self._con = self._connect(threads, file_access)
        self._cold = ColdTier((self.path / "cold").resolve()) if self.path else None
        self._catalog: dict[str, Measurement] = load_catalog(self._con)
        self._max_time: dict[str, int | None] = {}
        self._cold_max: dict[str, int] = {}  # measurement -> latest time in its cold files
        self._after_commit: list[str] = []  # cold files replaced by a thaw, removed on commit
        self._after_rollback: list[str] = []  # cold files a thaw wrote, removed on rollback

    def _connect(self, threads: int | None, file_access: FileAccess):
        if self.path is None:
            con = duckdb.connect(":memory:")
        else:
            self.path.mkdir(parents=True, exist_ok=True)
            try:
                con = duckdb.connect(str(self.path / DB_FILE))
            except duckdb.IOException as e:
                raise StorageError(
                    f"cannot open the store in {self.path}: {e} (is a server using it?)"
                ) from None
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        if not self.fsync:
            con.execute("SET fsync_mode = 'none'")
        if file_access == "cold-tier":
            self._restrict_files(con)
        for ddl in META_DDL:
            con.execute(ddl)
        return con

    def _restrict_files(self, con) -> None:
        """SQL may read no files but the cold tier's (no read_csv('/etc/...') through the server)."""
        if not con.execute("SELECT current_setting('enable_external_access')").fetchone()[0]:
            return  # a second backend on a database this process has open: already restricted
        if self.path is not None:
            cold = str((self.path / "cold").resolve()) + "/"
            con.execute(f"SET allowed_directories = ['{cold.replace(chr(39), chr(39) * 2)}']")
        con.execute("SET enable_external_access = false")

    @classmethod
    def from_config(cls, config) -> DuckDBBackend:
        """The store a ``storage:`` section (``backend: duckdb``) describes."""
        return cls(config.path, fsync=config.fsync)

    # ------------------------------------------------------------------ writing

    def write(self, points: Iterable[Point]) -> WriteResult:
        return self.write_batch(columns_from_points(points))

    def write_lp(self, data: bytes | str, *, precision: str = "ns") -> WriteResult:
        return self.write_batch(parse_columns(data, precision=precision, default_time=self.clock()))

    def write_batch(self, batch: ColumnBatch) -> WriteResult:
        """Store a parsed batch; lines with parse errors or conflicts are reported, the rest kept."""
        rejected = [(e.line, str(e)) for e in batch.errors]
        by_measurement: dict[str, list[Group]] = {}
        for g in batch.groups:
            by_measurement.setdefault(g.measurement, []).append(g)
        with self._lock:
            plans = [plan_measurement(m, gs, self._catalog) for m, gs in by_measurement.items()]
            written = self._commit(plans)
        rejected += [r for p in plans for r in p.rejected]
        return WriteResult(written=written, rejected=sorted(rejected))

    def _commit(self, plans: list[Plan]) -> int:
        con = self._con
        self._after_commit, self._after_rollback = [], []
        con.begin()  # the API calls cost less than parsing BEGIN/COMMIT statements on every write
        try:
            written = sum(self._store(con, p) for p in plans if p.table is not None)
            con.commit()
        except Exception as e:
            with contextlib.suppress(duckdb.Error):  # a failed COMMIT has already ended it
                con.rollback()
            self._max_time.clear()
            self._cold_max.clear()
            _unlink(self._after_rollback)
            if isinstance(e, duckdb.Error):
                raise StorageError(f"write not stored: {e}") from e
            raise
        _unlink(self._after_commit)
        self._catalog = updated_catalog(self._catalog, plans)
        return written

    def _store(self, con, plan: Plan) -> int:
        apply_ddl(con, plan)
        if plan.create or plan.new_columns:
            con.execute(view_sql(plan.measurement, self._cold_files(con, plan.measurement)))
        table = plan.table
        con.register("__batch", table)
        try:
            if _has_duplicates(table, plan.tags):
                con.execute(f"CREATE OR REPLACE TEMP TABLE __dedup AS {_dedupe_sql(table, plan.tags)}")
                src = "__dedup"
            else:
                src = "__batch"
            self._insert(con, plan, src, table)
        finally:
            con.unregister("__batch")
        return table.num_rows

    def _insert(self, con, plan: Plan, src: str, table: pa.Table) -> None:
        m = qi(plan.measurement)
        cols = [c for c in table.column_names if c != LINE]
        lo, hi = _time_range(table)
        if self._cold is not None and not plan.create and lo <= self._cold_newest(con, plan.measurement):
            thawed, replaced, created = self._cold.thaw(con, plan.measurement, lo, hi, src, plan.tags, cols)
            self._after_commit += replaced
            self._after_rollback += created
            if thawed:
                self._max_time.pop(plan.measurement, None)  # the hot table now holds older rows
                self._cold_max.pop(plan.measurement, None)
        newest = self._newest(con, plan.measurement)
        if newest is not None and lo <= newest and self._overlaps(con, plan, src, cols, lo, hi):
            self._merge(con, plan, src, cols, lo, hi)
        else:
            select = ", ".join(qi(c) for c in cols)
            con.execute(f"INSERT INTO hot.{m} ({select}) SELECT {select} FROM {src}")
        self._max_time[plan.measurement] = hi if newest is None else max(newest, hi)

    def _cold_newest(self, con, measurement: str) -> int:
        """The latest time in the measurement's cold files (cached; -1 without any): writes after
        it cannot touch the cold tier, and most writes are."""
        if measurement not in self._cold_max:
            newest = self._cold.newest(con, measurement) if self._cold is not None else None
            self._cold_max[measurement] = -1 if newest is None else int(newest)
        return self._cold_max[measurement]

    def _newest(self, con, measurement: str) -> int | None:
        if measurement not in self._max_time:
            row = con.execute(f"SELECT max(epoch_ns(time)) FROM hot.{qi(measurement)}").fetchall()[0]
            self._max_time[measurement] = row[0]
        return self._max_time[measurement]

    def _overlaps(self, con, plan: Plan, src: str, cols: list[str], lo: int, hi: int) -> bool:
        """Whether a stored row has the series and time of a batch row. A batch within the stored
        time range usually does not (several writers a little apart, each with its own series),
        and a semi-join costs far less than the merge's UPDATE and anti-join."""
        on = _stored_match(plan, cols, lo, hi)
        row = con.execute(
            f"SELECT EXISTS (SELECT 1 FROM hot.{qi(plan.measurement)} AS s JOIN {src} AS d ON {on})"
        ).fetchone()
        return bool(row[0])

    def _merge(self, con, plan: Plan, src: str, cols: list[str], lo: int, hi: int) -> None:
        m = qi(plan.measurement)
        on = _stored_match(plan, cols, lo, hi)
        fields = [c for c in cols if c != TIME and c not in plan.tags]
        sets = ", ".join(f"{qi(f)} = COALESCE(d.{qi(f)}, s.{qi(f)})" for f in fields)
        con.execute(f"UPDATE hot.{m} AS s SET {sets} FROM {src} AS d WHERE {on}")
        select = ", ".join(f"d.{qi(c)}" for c in cols)
        names = ", ".join(qi(c) for c in cols)
        con.execute(
            f"INSERT INTO hot.{m} ({names}) SELECT {select} FROM {src} AS d "
            f"WHERE NOT EXISTS (SELECT 1 FROM hot.{m} AS s WHERE {on})"
        )

    def _cold_files(self, con, measurement: str) -> list[str]:
        return self._cold.files(con, measurement) if self._cold else []

    # ------------------------------------------------------------------ reading

    def query(self, q: RangeQuery) -> pd.DataFrame:
        with self._cursor() as cur:
            return query_frame(cur, q, self._catalog.get(q.measurement))

    def native(self, text: str) -> pd.DataFrame:
        """Run read-only SQL (SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN) as a DataFrame."""
        with self._cursor() as cur:
            return _run(lambda: self._read_only(cur, text).df())

    def sql_arrow(self, text: str) -> pa.Table:
        """Run read-only SQL and return an Arrow table (used by the HTTP query endpoint)."""
        with self._cursor() as cur:
            return _run(lambda: self._read_only(cur, text).to_arrow_table())

    def _read_only(self, cur, text: str):
        try:
            statements = cur.extract_statements(text)
        except duckdb.Error as e:
            raise QueryError(f"invalid SQL: {e}") from None
        if len(statements) != 1:
            raise QueryError(f"expected exactly one statement, got {len(statements)}")
        if statements[0].type not in READ_ONLY_STATEMENTS:
            raise QueryError(f"only read-only queries are allowed here, not {statements[0].type.name}")
        cur.execute("BEGIN TRANSACTION READ ONLY")
        return cur.sql(text)

    def _cursor(self):
        return _Cursor(self._con)

    def measurements(self) -> list[str]:
        return sorted(self._catalog)

    def tag_keys(self, measurement: str) -> list[str]:
        m = self._catalog.get(measurement)
        return m.tags if m else []

    def tag_values(self, measurement: str, key: str) -> list[str]:
        m = self._catalog.get(measurement)
        if m is None or key not in m.tags:
            return []
        with self._cursor() as cur:
            rows = cur.execute(
                f"SELECT DISTINCT {qi(key)} FROM main.{qi(measurement)} WHERE {qi(key)} IS NOT NULL ORDER BY 1"
            ).fetchall()
        return [r[0] for r in rows]

    # ------------------------------------------------------------------ deleting, retention

    def delete(self, measurement: str, start: int, end: int, where: dict[str, str] | None = None) -> int:
        schema = self._catalog.get(measurement)
        if schema is None:
            return 0
        tags = tag_predicate(
            {k: [v] if isinstance(v, str) else list(v) for k, v in (where or {}).items()}, schema
        )
        if tags is None:
            return 0
        predicate = " AND ".join(p for p in (time_predicate(start, end), tags) if p)
        with self._lock:
            n = self._con.execute(f"DELETE FROM hot.{qi(measurement)} WHERE {predicate}").fetchall()[0][0]
            if self._cold:
                n += self._cold.delete(self._con, measurement, predicate, sorted(where or {}))
            self._max_time.pop(measurement, None)
            self._cold_max.pop(measurement, None)
        return int(n)

    def enforce_retention(self, now_ns: int) -> dict[str, int]:
        """Move rows past each measurement's hot period to the cold tier; rows moved per measurement."""
        moved = {}
        with self._lock:
            for m, cutoff in cutoffs(self.retention, now_ns).items():
                if m in self._catalog and self._cold is not None:
                    moved[m] = self._cold.move(self._con, m, cutoff)
                    self._max_time.pop(m, None)
                    self._cold_max.pop(m, None)
        return moved

    def size_bytes(self) -> int:
        """Bytes on disk (database, write-ahead log and cold tier)."""
        if self.path is None:
            return 0
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())

    def checkpoint(self) -> None:
        with self._lock:
            self._con.execute("CHECKPOINT")

    def close(self) -> None:
        with self._lock:
            self._con.close()


def _run(fetch):
    try:
        return fetch()
    except duckdb.Error as e:
        raise QueryError(str(e)) from None


class _Cursor:
    """A per-call DuckDB cursor (its own connection to the same database), closed on exit."""

    def __init__(self, con):
        self._cur = con.cursor()

    def __enter__(self):
        return self._cur

    def __exit__(self, *exc) -> None:
        self._cur.close()


def _time_range(table: pa.Table) -> tuple[int, int]:
    times = table.column(TIME).cast(pa.int64())
    mm = pc.min_max(times)
    return int(mm["min"].as_py()), int(mm["max"].as_py())


def _codes(column: pa.ChunkedArray) -> np.ndarray:
    encoded = pc.dictionary_encode(column.combine_chunks(), null_encoding="encode")
    return encoded.indices.to_numpy(zero_copy_only=False)


def _unlink(paths: list[str]) -> None:
    for p in paths:
        Path(p).unlink(missing_ok=True)


def _has_duplicates(table: pa.Table, tags: list[str]) -> bool:
    """Whether two rows of the batch share series and time (NumPy sort over dictionary codes)."""
    keys = [np.asarray(table.column(TIME).cast(pa.int64()).combine_chunks())]
    keys += [_codes(table.column(t)) for t in tags if t in table.column_names]
    order = np.lexsort(keys)
    same = np.ones(len(order) - 1, dtype=bool) if len(order) > 1 else np.zeros(0, dtype=bool)
    for k in keys:
        same &= np.diff(k[order]) == 0
    return bool(same.any())


def _stored_match(plan: Plan, cols: list[str], lo: int, hi: int) -> str:
    """Stored row ``s`` is batch row ``d``'s series and time, within the batch's time range (so
    DuckDB skips row groups outside it)."""
    return (
        _key_match(plan.tags, cols, "s", "d")
        + f" AND s.time BETWEEN make_timestamp_ns({lo}) AND make_timestamp_ns({hi})"
    )


def _key_match(tags: list[str], cols: list[str], s: str, d: str) -> str:
    """Rows ``s`` (stored) and ``d`` (batch) are the same series at the same time."""
    parts = [f"{s}.time = {d}.time"]
    for t in tags:
        if t in cols:
            parts.append(f"{s}.{qi(t)} IS NOT DISTINCT FROM {d}.{qi(t)}")
        else:
            parts.append(f"{s}.{qi(t)} IS NULL")
    return " AND ".join(parts)


def _dedupe_sql(table: pa.Table, tags: list[str]) -> str:
    """Collapse rows of the batch with the same series and time: per field, the last non-null."""
    keys = [TIME] + [t for t in tags if t in table.column_names]
    fields = [c for c in table.column_names if c not in keys and c != LINE]
    aggs = [f"arg_max({qi(f)}, {LINE}) FILTER (WHERE {qi(f)} IS NOT NULL) AS {qi(f)}" for f in fields]
    key_sql = ", ".join(qi(k) for k in keys)
    return f"SELECT {key_sql}, {', '.join(aggs)}, max({LINE}) AS {LINE} FROM __batch GROUP BY {key_sql}"

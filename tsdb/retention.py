"""Hot/cold tiers of the embedded store: rows older than a measurement's hot period move from its
DuckDB table to Parquet files under ``<data dir>/cold/``, and the measurement's view unions both,
so portable queries and SQL see every row wherever it lives.

A move writes the Parquet file first and then, in one transaction, deletes the rows from the hot
table and records the file; a crash in between leaves an unrecorded file (ignored), never a lost
or doubled row. Deletes rewrite the affected files the same way.

A write that reaches a point already in the cold tier (a re-sent batch, a spool replayed after
a long outage) first *thaws* it: the matching cold rows go back into the hot table and their
files are rewritten without them, inside the write's own transaction, so the write merges
field by field with the stored point, last write wins, exactly as it does in the hot table.
The old files are removed only after the transaction commits (:meth:`ColdTier.thaw` returns
them); a failed write leaves the catalog and the old files as they were.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from tsdb.duckdb_schema import qi


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def view_sql(measurement: str, files: list[str]) -> str:
    """The statement (re)creating a measurement's view over its hot table and cold files."""
    m = qi(measurement)
    body = f"SELECT * FROM hot.{m}"
    if files:
        listed = ", ".join(_sql_str(f) for f in files)
        body += f" UNION ALL BY NAME SELECT * FROM read_parquet([{listed}], union_by_name = true)"
    return f"CREATE OR REPLACE VIEW main.{m} AS {body}"


def _dir_name(measurement: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", measurement)[:60]
    return f"{safe}-{hashlib.sha1(measurement.encode()).hexdigest()[:8]}"


@dataclass(frozen=True)
class ColdTier:
    """Parquet files of the cold tier under ``root``; the catalog lives in ``mlpulse.cold_files``."""

    root: Path

    def files(self, con, measurement: str) -> list[str]:
        rows = con.execute(
            "SELECT path FROM mlpulse.cold_files WHERE measurement = ? ORDER BY min_time, path", [measurement]
        ).fetchall()
        return [r[0] for r in rows]

    def _new_path(self, measurement: str, lo: int, hi: int) -> Path:
        d = self.root / _dir_name(measurement)
        d.mkdir(parents=True, exist_ok=True)
        return d / f"{lo}-{hi}-{uuid.uuid4().hex[:8]}.parquet"

    def move(self, con, measurement: str, cutoff_ns: int) -> int:
        """Move rows with ``time < cutoff_ns`` to a new Parquet file; returns the number moved."""
        m = qi(measurement)
        cond = f"time < make_timestamp_ns({int(cutoff_ns)})"
        n, lo, hi = con.execute(
            f"SELECT count(*), min(epoch_ns(time)), max(epoch_ns(time)) FROM hot.{m} WHERE {cond}"
        ).fetchall()[0]
        if not n:
            return 0
        path = self._new_path(measurement, lo, hi)
        con.execute(
            f"COPY (SELECT * FROM hot.{m} WHERE {cond} ORDER BY time) TO {_sql_str(str(path))} (FORMAT parquet)"
        )
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(f"DELETE FROM hot.{m} WHERE {cond}")
            con.execute(
                "INSERT INTO mlpulse.cold_files VALUES (?, ?, ?, ?, ?)", [measurement, str(path), lo, hi, n]
            )
            con.execute(view_sql(measurement, self.files(con, measurement)))
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            path.unlink(missing_ok=True)
            raise
        return int(n)

    def newest(self, con, measurement: str) -> int | None:
        """The latest time (ns) in the cold files of ``measurement``; None when it has none."""
        return con.execute("SELECT max(max_time) FROM mlpulse.cold_files WHERE measurement = ?",
                           [measurement]).fetchall()[0][0]

    def thaw(self, con, measurement: str, lo: int, hi: int, batch: str, tags: list[str],
             batch_cols: list[str]) -> tuple[int, list[str], list[str]]:
        """Inside the caller's transaction: move the cold rows of ``measurement`` in ``[lo, hi]``
        that have the same series and time as a row of the table ``batch`` back into the hot
        table, and re-record each affected file as a new file without them. Returns the number of
        rows thawed, the replaced files (to unlink once the transaction has committed) and the
        files written (to unlink if it rolls back)."""
        m = qi(measurement)
        rows = con.execute(
            "SELECT path FROM mlpulse.cold_files WHERE measurement = ? AND max_time >= ? AND min_time <= ? "
            "ORDER BY min_time, path", [measurement, lo, hi]
        ).fetchall()
        total, replaced, created = 0, [], []
        if not rows:
            return 0, [], []
        hot_cols = {r[0] for r in con.execute(f"DESCRIBE hot.{m}").fetchall()}
        for (path,) in rows:
            src = f"read_parquet({_sql_str(path)})"
            present = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()]
            match = f"EXISTS (SELECT 1 FROM {batch} AS d WHERE {_same_point(tags, present, batch_cols)})"
            n = con.execute(f"SELECT count(*) FROM {src} AS c WHERE {match}").fetchall()[0][0]
            if not n:
                continue
            cols = ", ".join(qi(c) for c in present if c in hot_cols)
            con.execute(f"INSERT INTO hot.{m} ({cols}) SELECT {cols} FROM {src} AS c WHERE {match}")
            kept = self._write_kept(con, measurement, f"SELECT * FROM {src} AS c WHERE NOT ({match})")
            self._swap(con, measurement, path, kept)
            if kept is not None:
                created.append(kept[0])
            total += n
            replaced.append(path)
        if replaced:
            con.execute(view_sql(measurement, self.files(con, measurement)))
        return int(total), replaced, created

    def delete(self, con, measurement: str, predicate: str, columns: list[str]) -> int:
        """Delete rows matching ``predicate`` (literal SQL over ``columns``) from the cold files, each
        affected file rewritten. A file written before one of ``columns`` existed has no match."""
        total = 0
        for path in self.files(con, measurement):
            src = f"read_parquet({_sql_str(path)})"
            present = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()}
            if not set(columns) <= present:
                continue
            n = con.execute(f"SELECT count(*) FROM {src} WHERE {predicate}").fetchall()[0][0]
            if n:
                self._rewrite(con, measurement, path, src, predicate)
                total += n
        return total

    def _rewrite(self, con, measurement: str, path: str, src: str, predicate: str) -> None:
        kept = self._write_kept(con, measurement, f"SELECT * FROM {src} WHERE NOT ({predicate})")
        con.execute("BEGIN TRANSACTION")
        self._swap(con, measurement, path, kept)
        con.execute(view_sql(measurement, self.files(con, measurement)))
        con.execute("COMMIT")
        Path(path).unlink(missing_ok=True)

    def _write_kept(self, con, measurement: str, keep: str) -> tuple[str, int, int, int] | None:
        """Write the rows of the query ``keep`` to a new file: (path, rows, min time, max time),
        or None when no row is left."""
        n, lo, hi = con.execute(
            f"SELECT count(*), min(epoch_ns(time)), max(epoch_ns(time)) FROM ({keep})"
        ).fetchall()[0]
        if not n:
            return None
        new = str(self._new_path(measurement, lo, hi))
        con.execute(f"COPY ({keep} ORDER BY time) TO {_sql_str(new)} (FORMAT parquet)")
        return new, int(n), int(lo), int(hi)

    def _swap(self, con, measurement: str, old: str, kept: tuple[str, int, int, int] | None) -> None:
        """In the catalog, file ``old`` gives way to the file ``kept`` wrote (none if no row was left)."""
        con.execute("DELETE FROM mlpulse.cold_files WHERE path = ?", [old])
        if kept is not None:
            new, n, lo, hi = kept
            con.execute("INSERT INTO mlpulse.cold_files VALUES (?, ?, ?, ?, ?)",
                        [measurement, new, lo, hi, n])


def _same_point(tags: list[str], cold_cols: list[str], batch_cols: list[str]) -> str:
    """Cold row ``c`` and batch row ``d`` are the same series at the same time; a tag column one
    side lacks is NULL on that side (a file written before the tag existed, a batch without it)."""
    parts = ["c.time = d.time"]
    for t in tags:
        c = f"c.{qi(t)}" if t in cold_cols else "NULL"
        d = f"d.{qi(t)}" if t in batch_cols else "NULL"
        if c != "NULL" or d != "NULL":
            parts.append(f"{c} IS NOT DISTINCT FROM {d}")
    return " AND ".join(parts)


def cutoffs(retention: dict[str, timedelta], now_ns: int) -> dict[str, int]:
    """The cold-tier cutoff (ns) per measurement for the given time."""
    return {m: now_ns - int(td.total_seconds() * 1e9) for m, td in retention.items()}

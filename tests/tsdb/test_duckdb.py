"""The embedded store beyond the contract: schema evolution, type conflicts, field types, read-only
SQL, persistence, the cold tier, concurrency, and a model-based property test of merging."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tsdb.base import QueryError, RangeQuery, StorageError
from tsdb.duckdb import DuckDBBackend
from tsdb.point import Point, UInt

S = 1_000_000_000
T0 = 1_704_067_200 * S


@pytest.fixture
def store(tmp_path):
    b = DuckDBBackend(tmp_path / "data")
    yield b
    b.close()


def columns(store, measurement: str) -> dict[str, str]:
    df = store.native(f'DESCRIBE "{measurement}"')
    return dict(zip(df["column_name"], df["column_type"]))


def test_one_table_per_measurement_with_typed_columns(store):
    store.write_lp('gpu,host=a util=0.5,mem=3i,n=7u,ok=T,name="h100" 1\n')
    assert columns(store, "gpu") == {
        "time": "TIMESTAMP_NS",
        "host": "VARCHAR",
        "util": "DOUBLE",
        "mem": "BIGINT",
        "n": "UBIGINT",
        "ok": "BOOLEAN",
        "name": "VARCHAR",
    }
    row = store.native("SELECT * FROM gpu").iloc[0]
    assert (row["util"], row["mem"], row["n"], row["ok"], row["name"]) == (0.5, 3, 7, True, "h100")


def test_new_tags_and_fields_add_columns_and_old_rows_read_null(store):
    store.write_lp("m,a=1 x=1 1\n")
    store.write_lp("m,a=1,b=2 x=2,y=3 2\n")
    assert list(columns(store, "m")) == ["time", "a", "x", "b", "y"]
    df = store.native("SELECT b, y FROM m ORDER BY time")
    assert df["b"].isna().tolist() == [True, False] and df["y"].isna().tolist() == [True, False]


def test_field_type_conflict_rejects_the_line_naming_everything(store):
    assert store.write_lp("m x=1 1\n").ok
    r = store.write_lp("m x=2i 2\nm x=3 3\n")
    assert r.written == 1
    assert len(r.rejected) == 1
    line, message = r.rejected[0]
    assert line == 1
    assert "'m'" in message and "'x'" in message and "float" in message and "integer" in message


def test_type_conflict_inside_one_write_keeps_the_first_type(store):
    r = store.write_lp("m x=1i 1\nm x=2 2\nm x=3i 3\n")
    assert r.written == 2 and [ln for ln, _ in r.rejected] == [2]
    assert store.native("SELECT x FROM m ORDER BY time")["x"].tolist() == [1, 3]


def test_tag_and_field_of_the_same_name_are_rejected(store):
    store.write_lp("m,k=v f=1 1\n")
    r = store.write_lp("m k=2 2\n")
    assert r.written == 0 and "stored as a tag" in r.rejected[0][1]


def test_names_differing_only_in_case_are_rejected_not_merged(store):
    store.write_lp("cpu,host=a u=1 1\n")
    r = store.write_lp("cpu,Host=a u=1 2\nCPU u=1 3\n")
    assert r.written == 0
    assert all("case-insensitive" in msg for _, msg in r.rejected)


def test_invalid_points_are_rejected_by_index_and_the_rest_stored(store):
    pts = [
        Point("m", {"k": "v"}, {"x": 1.0}, 1),
        Point("m", {"k": ""}, {"x": 2.0}, 2),
        Point("m", {}, {}, 3),
        Point("m", {}, {"x": float("nan")}, 4),
    ]
    r = store.write(pts)
    assert r.written == 2 and [i for i, _ in r.rejected] == [2, 3]
    assert "empty tag" in r.rejected[0][1] and "at least one field" in r.rejected[1][1]


def test_raw_query_keeps_integer_boolean_and_string_fields(store):
    store.write([Point("m", {}, {"i": 5, "u": UInt(2**64 - 1), "b": False, "s": "x y"}, T0)])
    df = store.query(RangeQuery("m", T0, T0 + 1))
    assert (df["i"][0], df["u"][0], df["b"][0], df["s"][0]) == (5, 2**64 - 1, False, "x y")
    with pytest.raises(QueryError, match="string"):
        store.query(RangeQuery("m", T0, T0 + 1, every=S, aggregate="mean", fields=["s"]))
    counted = store.query(RangeQuery("m", T0, T0 + 1, every=S, aggregate="count", fields=["s", "b"]))
    assert counted[["b", "s"]].values.tolist() == [[1.0, 1.0]]


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM m",
        "DROP TABLE hot.m",
        "INSERT INTO hot.m (time) VALUES (now())",
        "COPY hot.m TO '/tmp/x.csv'",
        "ATTACH ':memory:' AS x",
        "SET threads = 1",
        "SELECT 1; DELETE FROM m",
        "CREATE TABLE t AS SELECT 1",
    ],
)
def test_native_sql_is_read_only(store, sql):
    store.write_lp("m x=1 1\n")
    with pytest.raises(QueryError):
        store.native(sql)
    assert store.native("SELECT count(*) AS n FROM m")["n"][0] == 1


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM glob('/*')",
        "SELECT * FROM read_text('/etc/hostname')",
    ],
)
def test_native_sql_cannot_read_files_outside_the_store(store, sql):
    with pytest.raises(QueryError, match="disabled by configuration"):
        store.native(sql)


def test_native_sql_reads_views_with_time_functions(store):
    store.write_lp("m,h=a x=1 0\nm,h=a x=3 30000000000\nm,h=a x=5 90000000000\n")
    df = store.native(
        "SELECT time_bucket(INTERVAL '1 minute', time) AS t, avg(x) AS x FROM m GROUP BY 1 ORDER BY 1"
    )
    assert df["x"].tolist() == [2.0, 5.0]
    assert store.native("SHOW TABLES")["name"].tolist() == ["m"]


def test_data_survive_close_and_reopen(tmp_path):
    b = DuckDBBackend(tmp_path / "d")
    b.write_lp("m,k=v x=1 1\n")
    b.close()
    b = DuckDBBackend(tmp_path / "d")
    assert b.measurements() == ["m"] and b.tag_keys("m") == ["k"]
    assert b.write_lp("m,k=v x=2 1\n").ok  # merges with the stored row after reopening
    assert b.native("SELECT x FROM m")["x"].tolist() == [2.0]
    b.close()


def test_a_second_process_style_open_of_a_busy_store_names_the_problem(tmp_path, store):
    import subprocess
    import sys

    code = f"from tsdb.duckdb import DuckDBBackend\nDuckDBBackend({str(store.path)!r})\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode != 0 and "is a server using it?" in out.stderr


def test_lines_without_a_timestamp_take_the_injected_clock():
    b = DuckDBBackend(None, clock=lambda: T0 + 42)
    assert b.write_lp("m f=1\nm f=2 5\n").ok
    assert b.native("SELECT epoch_ns(time) AS t FROM m ORDER BY t")["t"].tolist() == [5, T0 + 42]
    b.close()


def test_in_memory_store(tmp_path):
    b = DuckDBBackend(None)
    assert b.write_lp("m x=1 1\n").ok and b.size_bytes() == 0
    with pytest.raises(ValueError):
        DuckDBBackend(None, retention={"m": timedelta(days=1)})
    b.close()


def test_retention_moves_old_rows_to_parquet_that_queries_still_see(tmp_path):
    b = DuckDBBackend(tmp_path / "d", retention={"cpu": timedelta(hours=1)})
    pts = [Point("cpu", {"h": h}, {"u": float(i)}, T0 + i * 600 * S) for h in "ab" for i in range(12)]
    b.write(pts)
    moved = b.enforce_retention(now_ns=T0 + 2 * 3600 * S)  # cutoff T0 + 1 h: i < 6 move
    assert moved == {"cpu": 12}
    assert len(list((tmp_path / "d" / "cold").rglob("*.parquet"))) == 1
    assert b.native("SELECT count(*) AS n FROM hot.cpu")["n"][0] == 12
    df = b.query(RangeQuery("cpu", T0, T0 + 3 * 3600 * S, where={"h": "a"}))
    assert df["u"].tolist() == [float(i) for i in range(12)]
    assert b.native("SELECT count(*) AS n FROM cpu")["n"][0] == 24
    assert b.delete("cpu", T0, T0 + 1200 * S, {"h": "b"}) == 2  # both rows are cold
    b.write_lp("cpu,h=a,dc=z u=99,v=1 1\n")  # schema grows after the move
    b.close()
    b = DuckDBBackend(tmp_path / "d", retention={"cpu": timedelta(hours=1)})
    assert b.native("SELECT count(*) AS n FROM cpu")["n"][0] == 23
    assert b.query(RangeQuery("cpu", 0, T0 + 600 * S, where={"h": "b"}))["u"].tolist() == []
    assert b.tag_values("cpu", "dc") == ["z"]
    assert b.delete("cpu", 0, T0 + 10 * 3600 * S, {"dc": "z"}) == 1  # cold files predate the dc tag
    assert b.native("SELECT count(*) AS n FROM cpu")["n"][0] == 22
    b.close()


def test_concurrent_writers_and_readers(store):
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            for i in range(20):
                lp = "".join(f"m,w={w},s={j} x={i} {T0 + i * S}\n" for j in range(10))
                assert store.write_lp(lp).ok
        except Exception as e:  # reported below
            errors.append(e)

    def reader() -> None:
        try:
            for _ in range(20):
                store.query(RangeQuery("m", T0, T0 + 100 * S, every=10 * S, aggregate="count"))
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)] + [
        threading.Thread(target=reader)
    ]
    store.write_lp(f"m,w=0,s=0 x=0 {T0}\n")
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.native("SELECT count(*) AS n FROM m")["n"][0] == 3 * 20 * 10


def test_a_database_error_while_writing_is_a_storage_error(store):
    store.write_lp("m x=1 1\n")
    store._con.execute("DROP TABLE hot.m")  # gone behind the store's back: DuckDB fails the next write
    with pytest.raises(StorageError, match="write not stored"):
        store.write_lp("m x=2,y=1 2\n")


def test_a_failed_write_rolls_back_and_the_store_keeps_working(store, monkeypatch):
    store.write_lp("m x=1 1\n")

    def boom(*a, **k):
        raise StorageError("disk full")

    monkeypatch.setattr(store, "_insert", boom)
    with pytest.raises(StorageError):
        store.write_lp("m x=2 2,y=1\nn z=1 1\n".replace(" 2,y=1", ",y=1 2"))
    monkeypatch.undo()
    assert store.measurements() == ["m"]
    assert store.write_lp("m x=3,y=2 3\n").ok
    assert store.native("SELECT x FROM m ORDER BY time")["x"].tolist() == [1.0, 3.0]


# A model-based property: any sequence of writes (overlapping times, partial field sets, series
# with and without a tag) reads back as a dict merged field by field, last write wins.
_point = st.builds(
    lambda k, t, fields: Point("m", {"k": k} if k else {}, fields, T0 + t * S),
    st.sampled_from(["", "a", "b"]),
    st.integers(0, 5),
    st.dictionaries(st.sampled_from(["x", "y", "z"]), st.floats(-1e6, 1e6, allow_nan=False), min_size=1),
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(_point, min_size=1, max_size=8), min_size=1, max_size=5))
def test_merge_matches_a_last_write_wins_model(writes):
    store = DuckDBBackend(None)
    model: dict[tuple, dict] = {}
    for batch in writes:
        assert store.write(batch).ok
        for p in batch:
            model.setdefault((p.tags.get("k"), p.time), {}).update(p.fields)
    df = store.native("SELECT epoch_ns(time) AS t, * FROM m")
    got = {}
    for row in df.to_dict("records"):
        k = row.get("k")
        key = (k if isinstance(k, str) else None, row["t"])
        got[key] = {f: row[f] for f in ("x", "y", "z") if f in row and row[f] == row[f]}
    assert got == model
    store.close()


def test_two_backends_on_one_directory_in_one_process(tmp_path):
    from tsdb.point import Point

    first = DuckDBBackend(tmp_path / "data")
    first.write([Point("m", {"k": "v"}, {"f": 1.0}, 1_700_000_000 * 10**9)])
    second = DuckDBBackend(tmp_path / "data")  # DuckDB hands both the same database instance
    try:
        assert second.native("SELECT count(*) AS n FROM m")["n"][0] == 1
    finally:
        second.close()
        first.close()


def test_a_late_write_into_the_cold_tier_merges_with_the_stored_point(tmp_path):
    """A point re-sent after it moved to Parquet is thawed and merged (last write wins, field by
    field), not stored twice; the replaced file is removed, the untouched rows stay cold."""
    b = DuckDBBackend(tmp_path / "d", retention={"cpu": timedelta(hours=1)})
    b.write([Point("cpu", {"h": h}, {"u": float(i), "v": 1.0}, T0 + i * 600 * S)
             for h in "ab" for i in range(12)])
    b.enforce_retention(now_ns=T0 + 2 * 3600 * S)
    (old,) = list((tmp_path / "d" / "cold").rglob("*.parquet"))
    assert b.write([Point("cpu", {"h": "a"}, {"u": 100.0}, T0 + 2 * 600 * S),  # cold: merged
                    Point("cpu", {"h": "c"}, {"u": 7.0}, T0 + 2 * 600 * S)]).ok  # cold time, new series
    assert not old.exists()
    assert b.native("SELECT count(*) AS n FROM cpu")["n"][0] == 25
    df = b.query(RangeQuery("cpu", T0, T0 + 3 * 3600 * S, where={"h": "a"}))
    assert df["u"].tolist() == [0.0, 1.0, 100.0] + [float(i) for i in range(3, 12)]
    assert df["v"].tolist() == [1.0] * 12  # the field the late write did not carry is kept
    assert b.native("SELECT count(*) AS n FROM hot.cpu")["n"][0] == 14  # 12 hot + the two late points
    b.enforce_retention(now_ns=T0 + 2 * 3600 * S)  # moves them back out, still one row each
    assert b.native("SELECT count(*) AS n FROM hot.cpu")["n"][0] == 12
    assert b.native("SELECT count(*) AS n FROM cpu")["n"][0] == 25
    b.close()
    b = DuckDBBackend(tmp_path / "d", retention={"cpu": timedelta(hours=1)})
    assert b.query(RangeQuery("cpu", T0, T0 + 3 * 3600 * S, where={"h": "a"}))["u"].tolist()[2] == 100.0
    b.close()


def test_a_late_write_matches_cold_rows_written_before_a_tag_existed(tmp_path):
    b = DuckDBBackend(tmp_path / "d", retention={"m": timedelta(hours=1)})
    b.write([Point("m", {}, {"x": 1.0}, T0)])
    b.enforce_retention(now_ns=T0 + 2 * 3600 * S)
    b.write([Point("m", {"k": "a"}, {"x": 2.0}, T0 + 3 * 3600 * S)])  # the table gains tag k
    b.enforce_retention(now_ns=T0 + 5 * 3600 * S)  # a second cold file, with column k
    assert b.write([Point("m", {}, {"x": 3.0}, T0)]).ok  # same series (no k) and time as file 1
    df = b.native("SELECT epoch_ns(time) AS t, k, x FROM m ORDER BY t")
    assert df["x"].tolist() == [3.0, 2.0] and df["t"].tolist() == [T0, T0 + 3 * 3600 * S]
    b.close()


# The same last-write-wins model with the cold tier in play: any interleaving of writes and
# retention moves reads back as the merged dict, with one row per series and time.
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.lists(_point, min_size=1, max_size=6), st.integers(0, 7)),
                min_size=1, max_size=8))
def test_writes_and_retention_match_a_last_write_wins_model(tmp_path_factory, steps):
    store = DuckDBBackend(tmp_path_factory.mktemp("cold"), retention={"m": timedelta(seconds=1)})
    model: dict[tuple, dict] = {}
    for step in steps:
        if isinstance(step, int):  # move rows older than T0 + step s to the cold tier
            store.enforce_retention(now_ns=T0 + (step + 1) * S)
            continue
        assert store.write(step).ok
        for p in step:
            model.setdefault((p.tags.get("k"), p.time), {}).update(p.fields)
    if not model:  # only retention steps: nothing was ever written
        assert store.measurements() == []
        store.close()
        return
    df = store.native("SELECT epoch_ns(time) AS t, * FROM m")
    got = {}
    for row in df.to_dict("records"):
        k = row.get("k")
        key = (k if isinstance(k, str) else None, row["t"])
        assert key not in got, f"{key} stored twice"
        got[key] = {f: row[f] for f in ("x", "y", "z") if f in row and row[f] == row[f]}
    assert got == model
    store.close()


def test_fsync_is_chosen_by_the_storage_section(tmp_path):
    from pydantic import ValidationError

    from tsdb import open_backend
    from tsdb.config import StorageConfig

    def mode(b) -> str:
        return b.sql_arrow("SELECT current_setting('fsync_mode') AS m").column("m")[0].as_py().lower()

    synced = open_backend(StorageConfig(backend="duckdb", path=tmp_path / "a"))
    unsynced = open_backend(StorageConfig(backend="duckdb", path=tmp_path / "b", fsync=False))
    try:
        assert (mode(synced), mode(unsynced)) == ("standard", "none")
        unsynced.write([Point("m", {}, {"v": 1.0}, 1)])
        assert unsynced.native("SELECT v FROM m")["v"].tolist() == [1.0]
    finally:
        synced.close()
        unsynced.close()
    with pytest.raises(ValidationError, match="'fsync: false' applies to the embedded duckdb store only"):
        StorageConfig(backend="victoriametrics", url="http://127.0.0.1:1", fsync=False)


def test_a_writer_behind_another_appends_its_own_series_and_merges_only_real_overlaps(store, monkeypatch):
    """Two writers a little apart: B's batch reaches back into the stored time range but shares no
    series and time with stored rows, so it is appended; a re-sent point is merged."""
    merges = []
    real_merge = store._merge
    monkeypatch.setattr(store, "_merge", lambda *a: merges.append(a[1].measurement) or real_merge(*a))
    store.write_lp("".join(f"m,w=a x={t}i {T0 + t * S}\n" for t in range(10, 20)))
    store.write_lp("".join(f"m,w=b x={t}i {T0 + t * S}\n" for t in range(5, 15)))
    assert merges == []
    store.write_lp(f"m,w=b y=1.5 {T0 + 12 * S}\nm,w=b x=99i {T0 + 30 * S}\n")
    assert merges == ["m"]
    rows = store.native("SELECT w, epoch_ns(time) AS t, x, y FROM m ORDER BY w, time")
    assert len(rows) == 21
    b12 = rows[(rows.w == "b") & (rows.t == T0 + 12 * S)]
    assert (b12.x.tolist(), b12.y.tolist()) == ([12], [1.5])

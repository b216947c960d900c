"""The backend contract: every backend behind the ``backend`` fixture passes these tests.

Written only against :class:`tsdb.base.Backend` and the result shape documented in
:mod:`tsdb.base`. Data are float fields at whole-second times in 2024, which every backend
stores exactly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tsdb.base import AGGREGATES, Backend, RangeQuery
from tsdb.lineprotocol import encode
from tsdb.point import Point

S = 1_000_000_000
T0 = 1_704_067_200 * S  # 2024-01-01T00:00:00Z, a multiple of every bucket width used here
HOSTS = {"a": "x", "b": "x", "c": "y"}  # host -> region
STEPS = 12  # one point every 10 s for two minutes


def usage(host: str, i: int) -> float:
    return {"a": 1.0, "b": 100.0, "c": 1000.0}[host] + i * 1.5


def dataset() -> list[Point]:
    return [
        Point("cpu", {"host": h, "region": r}, {"usage": usage(h, i), "idle": 100.0 - i}, T0 + i * 10 * S)
        for h, r in HOSTS.items()
        for i in range(STEPS)
    ]


def expected_raw() -> pd.DataFrame:
    rows = [
        (p.time, p.tags["host"], p.tags["region"], p.fields["idle"], p.fields["usage"]) for p in dataset()
    ]
    df = pd.DataFrame(rows, columns=["time", "host", "region", "idle", "usage"])
    df["time"] = pd.to_datetime(df["time"], unit="ns", utc=True)
    return df.sort_values(["host", "region", "time"]).reset_index(drop=True)


@pytest.fixture
def loaded(backend) -> Backend:
    result = backend.write(dataset())
    assert result.ok, result.rejected
    assert result.written == len(HOSTS) * STEPS
    return backend


def values(df: pd.DataFrame, col: str) -> list:
    return df[col].tolist()


def test_is_a_backend(backend):
    assert isinstance(backend, Backend)
    assert isinstance(backend.name, str) and backend.name


def test_raw_query_returns_every_point_in_the_documented_shape(loaded):
    df = loaded.query(RangeQuery("cpu", T0, T0 + 3600 * S))
    assert list(df.columns) == ["time", "host", "region", "idle", "usage"]
    assert str(df["time"].dtype) == "datetime64[ns, UTC]"
    assert pd.api.types.is_string_dtype(df["host"]) and pd.api.types.is_string_dtype(df["region"])
    assert df["usage"].dtype == np.float64 and df["idle"].dtype == np.float64
    pd.testing.assert_frame_equal(df, expected_raw(), check_dtype=False)


def test_raw_query_with_requested_fields_only(loaded):
    df = loaded.query(RangeQuery("cpu", T0, T0 + 3600 * S, fields=["usage"]))
    assert list(df.columns) == ["time", "host", "region", "usage"]
    assert values(df, "usage") == expected_raw()["usage"].tolist()


def test_time_range_is_start_inclusive_end_exclusive(loaded):
    df = loaded.query(RangeQuery("cpu", T0 + 20 * S, T0 + 50 * S, where={"host": "a"}))
    assert [t.value for t in df["time"]] == [T0 + 20 * S, T0 + 30 * S, T0 + 40 * S]
    one_ns = loaded.query(RangeQuery("cpu", T0 + 50 * S, T0 + 50 * S + 1, where={"host": "a"}))
    assert [t.value for t in one_ns["time"]] == [T0 + 50 * S]


def test_where_accepts_one_value_or_a_list(loaded):
    one = loaded.query(RangeQuery("cpu", T0, T0 + 3600 * S, where={"host": "b"}))
    assert set(one["host"]) == {"b"} and len(one) == STEPS
    many = loaded.query(RangeQuery("cpu", T0, T0 + 3600 * S, where={"host": ["a", "c"]}))
    assert set(many["host"]) == {"a", "c"} and len(many) == 2 * STEPS
    both = loaded.query(RangeQuery("cpu", T0, T0 + 3600 * S, where={"host": ["a", "b"], "region": "x"}))
    assert len(both) == 2 * STEPS


def _expected_buckets(every_s: int, agg: str, group: list[str], q: float | None = None) -> pd.DataFrame:
    df = expected_raw()
    df["bucket"] = df["time"].dt.floor(f"{every_s}s")
    grouped = df.groupby(group + ["bucket"], sort=True)["usage"]
    if agg == "quantile":
        out = grouped.quantile(q)
    elif agg == "last":
        out = df.sort_values("time").groupby(group + ["bucket"])["usage"].last()
    else:
        out = getattr(grouped, agg)()
    return out.reset_index().sort_values(group + ["bucket"]).reset_index(drop=True)


@pytest.mark.parametrize("aggregate", [a for a in AGGREGATES if a != "quantile"])
def test_every_aggregate_per_series_bucket(loaded, aggregate):
    q = RangeQuery("cpu", T0, T0 + 3600 * S, fields=["usage"], every=60 * S, aggregate=aggregate)
    df = loaded.query(q)
    assert list(df.columns) == ["time", "host", "region", "usage"]
    assert df["usage"].dtype == np.float64
    want = _expected_buckets(60, aggregate if aggregate != "mean" else "mean", ["host", "region"])
    assert values(df, "host") == want["host"].tolist()
    assert [t.value for t in df["time"]] == [t.value for t in want["bucket"]]
    np.testing.assert_allclose(df["usage"].to_numpy(), want["usage"].astype(float).to_numpy())


def test_quantile_aggregate(loaded):
    # 30 s buckets hold three points each, so the median is unambiguous for any interpolation
    q = RangeQuery(
        "cpu", T0, T0 + 3600 * S, fields=["usage"], every=30 * S, aggregate="quantile", quantile=0.5
    )
    df = loaded.query(q)
    want = _expected_buckets(30, "quantile", ["host", "region"], 0.5)
    np.testing.assert_allclose(df["usage"].to_numpy(), want["usage"].to_numpy())
    top = loaded.query(
        RangeQuery(
            "cpu",
            T0,
            T0 + 3600 * S,
            fields=["usage"],
            every=30 * S,
            aggregate="quantile",
            quantile=1.0,
            where={"host": "a"},
        )
    )
    assert values(top, "usage") == [usage("a", i + 2) for i in range(0, STEPS, 3)]


def test_buckets_are_labelled_by_their_start_aligned_to_the_epoch(loaded):
    q = RangeQuery(
        "cpu",
        T0 + 15 * S,
        T0 + 95 * S,
        fields=["usage"],
        every=60 * S,
        aggregate="count",
        where={"host": "a"},
    )
    df = loaded.query(q)
    assert [t.value for t in df["time"]] == [T0, T0 + 60 * S]
    assert values(df, "usage") == [4.0, 4.0]  # 20,30,40,50 s and 60,70,80,90 s


def test_group_by_some_tags_merges_series(loaded):
    q = RangeQuery(
        "cpu", T0, T0 + 3600 * S, fields=["usage"], every=60 * S, aggregate="sum", group_by=["region"]
    )
    df = loaded.query(q)
    assert list(df.columns) == ["time", "region", "usage"]
    want = _expected_buckets(60, "sum", ["region"])
    assert values(df, "region") == want["region"].tolist()
    np.testing.assert_allclose(df["usage"].to_numpy(), want["usage"].to_numpy())


def test_group_by_nothing_merges_all_series(loaded):
    q = RangeQuery(
        "cpu", T0, T0 + 3600 * S, fields=["usage", "idle"], every=60 * S, aggregate="max", group_by=[]
    )
    df = loaded.query(q)
    assert list(df.columns) == ["time", "idle", "usage"]
    assert values(df, "usage") == [usage("c", 5), usage("c", 11)]
    assert values(df, "idle") == [100.0, 94.0]


def test_numeric_aggregates_of_a_boolean_field_count_true_as_one(backend):
    # the anomaly points' is_anomaly/spatial/seasonal are booleans; alert rules average them
    # or take their maximum per bucket (InfluxDB's Flux refuses that on booleans without toFloat)
    flags = {"a": [True, False, False, False], "b": [False, False, False, False]}
    pts = [Point("anomaly", {"detector": "d", "model": m}, {"is_anomaly": f, "score": float(i)}, T0 + i * 10 * S)
           for m, fs in flags.items() for i, f in enumerate(fs)]
    assert backend.write(pts).ok
    want = {"max": [1.0, 0.0], "mean": [0.25, 0.0], "sum": [1.0, 0.0], "min": [0.0, 0.0]}
    for aggregate, expected in want.items():
        df = backend.query(RangeQuery("anomaly", T0, T0 + 60 * S, fields=["is_anomaly"], every=60 * S,
                                      aggregate=aggregate, group_by=["model"]))
        got = df.sort_values("model")["is_anomaly"].astype(float).tolist()
        assert got == expected, aggregate
    both = backend.query(RangeQuery("anomaly", T0, T0 + 60 * S, every=60 * S, aggregate="mean", group_by=[]))
    assert both["is_anomaly"].astype(float).tolist() == [0.125] and both["score"].tolist() == [1.5]


def test_count_is_float_and_empty_buckets_are_omitted(backend):
    pts = [Point("m", {"k": "v"}, {"f": 1.0}, T0 + i * S) for i in (0, 1, 2)]
    pts.append(Point("m", {"k": "v"}, {"f": 2.0}, T0 + 600 * S))
    assert backend.write(pts).ok
    df = backend.query(RangeQuery("m", T0, T0 + 3600 * S, every=60 * S, aggregate="count"))
    assert df["f"].dtype == np.float64
    assert [t.value for t in df["time"]] == [T0, T0 + 600 * S]
    assert values(df, "f") == [3.0, 1.0]


@pytest.mark.parametrize(
    "q",
    [
        RangeQuery("nosuch", T0, T0 + 3600 * S, fields=["usage"]),
        RangeQuery("cpu", T0 - 3600 * S, T0, fields=["usage"]),
        RangeQuery("cpu", T0, T0 + 3600 * S, fields=["usage"], where={"host": "zz"}),
        RangeQuery("cpu", T0, T0 + 3600 * S, fields=["usage"], where={"nosuchtag": "a"}),
        RangeQuery("cpu", T0 - 3600 * S, T0, fields=["usage"], every=60 * S, aggregate="mean"),
    ],
    ids=["unknown-measurement", "before-data", "unknown-tag-value", "unknown-tag", "bucketed"],
)
def test_a_query_matching_nothing_returns_an_empty_frame_with_columns(loaded, q):
    df = loaded.query(q)
    assert df.empty
    assert list(df.columns) == ["time", "usage"]
    assert str(df["time"].dtype) == "datetime64[ns, UTC]"
    assert df["usage"].dtype == np.float64


def test_same_series_and_time_merges_fields_last_write_wins(backend):
    t = T0 + 5 * S
    assert backend.write([Point("m", {"k": "v"}, {"a": 1.0, "b": 2.0}, t)]).ok
    assert backend.write([Point("m", {"k": "v"}, {"a": 5.0}, t)]).ok
    df = backend.query(RangeQuery("m", T0, T0 + 60 * S))
    assert len(df) == 1
    assert (df["a"][0], df["b"][0]) == (5.0, 2.0)


def test_duplicates_inside_one_write_merge_in_order(backend):
    t = T0 + 7 * S
    lp = encode(
        [
            Point("m", {"k": "v"}, {"a": 1.0}, t),
            Point("m", {"k": "v"}, {"b": 3.0}, t),
            Point("m", {"k": "v"}, {"a": 2.0}, t),
            Point("m", {"k": "w"}, {"a": 9.0}, t),
        ]
    )
    assert backend.write_lp(lp).ok
    df = backend.query(RangeQuery("m", T0, T0 + 60 * S))
    assert values(df, "k") == ["v", "w"]
    assert values(df, "a") == [2.0, 9.0]
    assert df["b"][0] == 3.0 and np.isnan(df["b"][1])


def test_write_lp_with_precision(backend):
    assert backend.write_lp(f"m,k=v f=1.5 {T0 // S}\nm,k=v f=2.5 {T0 // S + 1}\n", precision="s").ok
    df = backend.query(RangeQuery("m", T0, T0 + 60 * S))
    assert [t.value for t in df["time"]] == [T0, T0 + S]
    assert values(df, "f") == [1.5, 2.5]


def test_measurements_tag_keys_and_tag_values(loaded):
    assert loaded.write([Point("mem", {"host": "a"}, {"used": 1.0}, T0)]).ok
    assert {"cpu", "mem"} <= set(loaded.measurements())
    assert loaded.tag_keys("cpu") == ["host", "region"]
    assert loaded.tag_values("cpu", "host") == ["a", "b", "c"]
    assert loaded.tag_values("cpu", "region") == ["x", "y"]
    assert loaded.tag_values("cpu", "nosuchtag") == []


def test_delete_by_time_range_and_tag(loaded):
    n = loaded.delete("cpu", T0 + 30 * S, T0 + 60 * S, {"host": "a"})
    assert n in (3, -1)
    a = loaded.query(RangeQuery("cpu", T0, T0 + 3600 * S, where={"host": "a"}))
    assert [t.value for t in a["time"]] == [T0 + i * 10 * S for i in range(STEPS) if not 3 <= i < 6]
    b = loaded.query(RangeQuery("cpu", T0, T0 + 3600 * S, where={"host": "b"}))
    assert len(b) == STEPS


def test_delete_by_range_only_removes_every_series_in_it(loaded):
    loaded.delete("cpu", T0, T0 + 60 * S)
    df = loaded.query(RangeQuery("cpu", T0, T0 + 3600 * S))
    assert len(df) == len(HOSTS) * (STEPS - 6)
    assert df["time"].min().value == T0 + 60 * S

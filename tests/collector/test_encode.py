"""The sink's fast encoder agrees with the shared reference encoder on every point, refuses what
line protocol cannot carry, and its columnar path encodes exactly like the per-point path."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.encode import LineEncoder
from tsdb.lineprotocol import encode_point, parse
from tsdb.point import Point, PointError, UInt

names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=8)
values = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(2**64), 2**64),
                   st.booleans(), st.text(max_size=8), st.integers(0, 2**64 - 1).map(UInt))
points = st.builds(Point, names, st.dictionaries(names, names, max_size=3),
                   st.dictionaries(names, values, max_size=3), st.integers(-(2**62), 2**62))


@given(points, st.sampled_from(["ns", "us", "ms", "s"]))
@settings(max_examples=200, deadline=None)
def test_fast_encoder_matches_the_reference_or_refuses_like_it(p, precision):
    enc = LineEncoder(precision)
    factor = {"ns": 1, "us": 10**3, "ms": 10**6, "s": 10**9}[precision]
    try:
        expected = encode_point(p, factor=factor)
        if p.measurement.startswith("\t"):  # the reference encoder writes a line its parser skips
            raise PointError("leading tab")
    except PointError:
        with pytest.raises(PointError):
            enc.point(p)
        return
    line = enc.point(p)
    assert line == expected
    (back,) = parse(line, precision=precision)
    assert back.fields == p.fields and back.tags == p.tags


@given(st.lists(st.tuples(st.floats(-1e300, 1e300, allow_nan=False), st.integers(-(2**63), 2**63 - 1),
                          st.text(max_size=5), st.booleans()), min_size=1, max_size=30))
@settings(max_examples=100, deadline=None)
def test_columns_encode_like_points(rows):
    enc = LineEncoder()
    times = list(range(1000, 1000 + len(rows)))
    cols = {"f": [r[0] for r in rows], "i": [r[1] for r in rows], "s": [r[2] for r in rows], "b": [r[3] for r in rows]}
    lines = enc.columns("m x", {"t k": "v,1"}, times, cols)
    assert lines == [enc.point(Point("m x", {"t k": "v,1"}, {k: c[i] for k, c in cols.items()}, t))
                     for i, t in enumerate(times)]


def test_numpy_columns_and_refusals():
    enc = LineEncoder("ms")
    lines = enc.columns("m", {}, np.array([2_000_000, 3_000_000]), {"v": np.array([0.5, 1.0]), "n": np.array([1, 2])})
    assert lines == ["m v=0.5,n=1i 2", "m v=1.0,n=2i 3"]
    with pytest.raises(PointError, match="NaN or Inf"):
        enc.columns("m", {}, [1, 2], {"v": [1.0, math.inf]})
    with pytest.raises(PointError, match="int64"):
        enc.columns("m", {}, [1], {"v": [2**63]})
    with pytest.raises(PointError, match="time column"):
        enc.columns("m", {}, [1.5], {"v": [1.0]})
    with pytest.raises(PointError, match="comment"):
        enc.point(Point("#m", {}, {"v": 1.0}, 1))


@given(st.lists(st.tuples(st.floats(-1e300, 1e300, allow_nan=False), st.integers(-(2**63), 2**63 - 1)),
                min_size=64, max_size=200), st.sampled_from(["list", "numpy"]))
@settings(max_examples=40, deadline=None)
def test_arrow_blocks_parse_to_the_same_points(rows, shape):
    enc = LineEncoder()
    times = list(range(10**9, 10**9 + len(rows)))
    f, i = [r[0] for r in rows], [r[1] for r in rows]
    if shape == "numpy":
        text, n = enc.block("m", {"k": "v"}, np.array(times), {"f": np.array(f), "i": np.array(i, dtype=np.int64)})
    else:
        text, n = enc.block("m", {"k": "v"}, times, {"f": f, "i": i})
    assert n == len(rows) and text.count("\n") == n - 1
    assert parse(text) == parse("\n".join(enc.columns("m", {"k": "v"}, times, {"f": f, "i": i})))


def test_block_refusals_and_fallbacks():
    enc = LineEncoder("us")
    with pytest.raises(PointError, match="nan"):
        enc.block("m", {}, np.arange(100), {"v": np.r_[np.ones(99), np.nan]})
    with pytest.raises(PointError, match="int64"):
        enc.block("m", {}, np.arange(100), {"v": np.full(100, 2**63, dtype=np.uint64)})
    text, n = enc.block("m", {}, np.arange(100) * 1000, {"v": np.ones(100), "s": ["x"] * 100})  # str: python path
    assert n == 100 and text.split("\n")[1] == 'm v=1.0,s="x" 1'
    text, _ = enc.block("m", {}, np.arange(100) * 1000, {"v": np.ones(100)})  # numeric: arrow path
    assert text.split("\n")[1] == "m v=1 1"

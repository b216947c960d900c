"""Line protocol: round trip, every grammar rule, errors with line and column, and agreement of the
bulk columnar parser with the exact scanner on generated input."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tsdb.lineprotocol_columns as lpc
import tsdb.lineprotocol_uniform as lpu
from tsdb.lineprotocol import (
    LineProtocolError,
    encode,
    parse,
    parse_lenient,
    parse_numbered,
    precision_factor,
)
from tsdb.lineprotocol_columns import columns_from_points, parse_columns
from tsdb.point import INT64_MAX, INT64_MIN, UINT64_MAX, Point, PointError, UInt


def typed(points) -> list:
    """Points with each field value's type made part of the comparison (1u != 1i != 1.0)."""
    return [
        (p.measurement, p.tags, {k: (type(v).__name__, v) for k, v in p.fields.items()}, p.time)
        for p in points
    ]


# ----------------------------------------------------------------------------- round trip

_special = st.sampled_from(list(' ,="\\=#\tabcXYZ09éß漢🙂'))
_any_char = st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r")
_name = st.text(st.one_of(_special, _any_char), min_size=1, max_size=12).filter(
    lambda s: not s.endswith("\\")
)
_measurement = _name.filter(lambda s: not s.startswith(("#", "\t")))
_string_value = st.text(
    st.one_of(st.sampled_from(list('"\\\n\r ,=')), st.characters(blacklist_categories=("Cs",))), max_size=20
)
_field_value = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(INT64_MIN, INT64_MAX),
    st.integers(0, UINT64_MAX).map(UInt),
    st.booleans(),
    _string_value,
)


@st.composite
def points(draw, precision: str = "ns"):
    factor = precision_factor(precision)
    t = draw(st.integers(-(INT64_MAX // factor), INT64_MAX // factor)) * factor
    return Point(
        draw(_measurement),
        draw(st.dictionaries(_name, _name, max_size=4)),
        draw(st.dictionaries(_name, _field_value, min_size=1, max_size=5)),
        t,
    )


@settings(max_examples=150, deadline=None)
@given(st.lists(points(), min_size=1, max_size=6))
def test_round_trip_parse_encode(pts):
    assert typed(parse(encode(pts))) == typed(pts)


@pytest.mark.parametrize("precision", ["ns", "us", "ms", "s"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_round_trip_in_every_precision(precision, data):
    pts = data.draw(st.lists(points(precision), min_size=1, max_size=4))
    assert typed(parse(encode(pts, precision=precision), precision=precision)) == typed(pts)


def test_encoder_refuses_what_line_protocol_cannot_express():
    for bad in (
        Point("m", {}, {"f": float("nan")}, 1),
        Point("m", {"k": ""}, {"f": 1.0}, 1),
        Point("m", {}, {}, 1),
        Point("#m", {}, {"f": 1.0}, 1),
        Point("\tm", {}, {"f": 1.0}, 1),
        Point("m", {"k\n": "v"}, {"f": 1}, 1),
    ):
        with pytest.raises(PointError):
            encode([bad])


# ----------------------------------------------------------------------------- grammar rules


def test_escapes_in_every_position():
    (p,) = parse(r'my\ meas\,x,t\ k\=1=v\,a\ b\=c f\ k\,\==1,s="a \"q\" \\ b" 5')
    assert p == Point("my meas,x", {"t k=1": "v,a b=c"}, {"f k,=": 1.0, "s": 'a "q" \\ b'}, 5)


def test_equals_sign_unescaped_in_measurement_is_literal():
    assert parse("a=b f=1 1")[0].measurement == "a=b"


@pytest.mark.parametrize(
    "text,value",
    [
        ("t", True),
        ("T", True),
        ("true", True),
        ("True", True),
        ("TRUE", True),
        ("f", False),
        ("F", False),
        ("false", False),
        ("False", False),
        ("FALSE", False),
    ],
)
def test_every_boolean_spelling(text, value):
    assert parse(f"m b={text} 1")[0].fields["b"] is value
    assert parse_columns(f"m b={text} 1").to_points()[0][1].fields["b"] is value


def test_numbers_keep_their_types_and_edges():
    (p,) = parse(f"m a=1,b=-1.5e3,c={INT64_MIN}i,d={INT64_MAX}i,e={UINT64_MAX}u,f=0u,g=.5,h=+2. 1")
    assert typed([p])[0][2] == {
        "a": ("float", 1.0),
        "b": ("float", -1500.0),
        "c": ("int", INT64_MIN),
        "d": ("int", INT64_MAX),
        "e": ("UInt", UINT64_MAX),
        "f": ("UInt", 0),
        "g": ("float", 0.5),
        "h": ("float", 2.0),
    }


def test_strings_may_span_lines_and_comments_blank_lines_and_crlf_are_skipped():
    data = '# header\r\n\r\n  \nm s="one\ntwo" 1\r\n   # indented comment\nm x=1i 2\r\n'
    pts = parse(data)
    assert [(p.fields, p.time) for p in pts] == [({"s": "one\ntwo"}, 1), ({"x": 1}, 2)]
    assert [ln for ln, _ in parse_numbered(data)[0]] == [4, 7]


@pytest.mark.parametrize(
    "precision,factor", [("ns", 1), ("us", 1_000), ("ms", 1_000_000), ("s", 1_000_000_000)]
)
def test_precision_scales_timestamps(precision, factor):
    assert parse("m f=1 7", precision=precision)[0].time == 7 * factor
    assert encode([Point("m", {}, {"f": 1.0}, 7 * factor + factor - 1)], precision=precision) == "m f=1.0 7\n"


def test_missing_timestamp_takes_the_default_time():
    assert parse("m f=1", default_time=42)[0].time == 42
    assert parse_columns("m f=1\nm f=2", default_time=42).to_points()[1][1].time == 42
    with pytest.raises(LineProtocolError, match="missing timestamp"):
        parse("m f=1")


def test_unknown_precision():
    with pytest.raises(ValueError, match="precision"):
        parse("m f=1 1", precision="h")


@pytest.mark.parametrize(
    "data,line,column,message",
    [
        ("m", 1, 2, "expected a space before the field set"),
        ("m ", 1, 3, "expected a field set"),
        ("m f", 1, 4, "expected '=' after field key 'f'"),
        ("m f=", 1, 5, "field 'f': expected a value"),
        ("m f=1 x", 1, 7, "invalid timestamp 'x'"),
        ("m,k= f=1 1", 1, 5, "tag 'k': empty tag value"),
        ("m,=v f=1 1", 1, 3, "expected a tag key"),
        ("m,k=v,k=w f=1 1", 1, 10, "duplicate tag key 'k'"),
        ("m f=abc 1", 1, 5, "field 'f': invalid value 'abc'"),
        ("m f=1e999 1", 1, 5, "out of range"),
        (f"m f={INT64_MAX + 1}i 1", 1, 5, "out of int64 range"),
        (f"m f={UINT64_MAX + 1}u 1", 1, 5, "out of uint64 range"),
        ("m f=-1u 1", 1, 5, "invalid value"),
        ('m s="abc 1', 1, 11, "unterminated string"),
        ("ok f=1 1\n\nm f=1 1 2", 3, 9, "unexpected '2' after the point"),
        (f"m f=1 {INT64_MAX}", 1, 1, None),
        (",k=v f=1 1", 1, 1, "expected a measurement name"),
    ],
)
def test_errors_name_line_column_and_what_was_expected(data, line, column, message):
    if message is None:
        assert parse(data, precision="ns")[0].time == INT64_MAX
        with pytest.raises(LineProtocolError, match="out of range"):
            parse(data, precision="s")
        return
    with pytest.raises(LineProtocolError) as info:
        parse(data)
    e = info.value
    assert (e.line, e.column) == (line, column) and message in str(e)
    assert str(e).startswith(f"line {line}, column {column}: ")
    errors = parse_columns(data, bulk_min_lines=0).errors
    assert [(x.line, x.column, x.reason) for x in errors] == [(e.line, e.column, e.reason)]


def test_invalid_utf8_names_the_line():
    with pytest.raises(LineProtocolError) as info:
        parse(b"m f=1 1\nm,k=\xff f=1 1\n")
    assert info.value.line == 2 and "UTF-8" in str(info.value)
    with pytest.raises(LineProtocolError):
        parse_columns(b"m f=1 1\nm,k=\xff f=1 1\n")


def test_lenient_parse_keeps_good_lines_and_reports_each_bad_one():
    pts, errors = parse_lenient("a f=1 1\nbad\nb f=2 2\nc f=x 3\n")
    assert [p.measurement for p in pts] == ["a", "b"]
    assert [e.line for e in errors] == [2, 4]


# ----------------------------------------------------------------------------- the bulk parser


def test_plain_payloads_never_touch_the_exact_scanner(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("exact scanner used for a plain payload")

    monkeypatch.setattr(lpc, "scan", refuse)
    data = "".join(f"cpu,host=h{i % 7},dc=x usage={i}.5,n={i}i,ok=t,u={i}u {i}\n" for i in range(500))
    batch = parse_columns(data + "# done\n\n")
    assert batch.errors == [] and batch.points == 500 and len(batch.groups) == 1
    g = batch.groups[0]
    assert g.tags == ("host", "dc")
    assert g.table.column("usage").to_pylist()[:2] == [0.5, 1.5] and g.table.column("n").to_pylist()[3] == 3


def test_columns_from_points_matches_parsing_their_encoding():
    pts = [Point("m", {"k": "v"}, {"f": 1.0, "s": 'q"'}, 1), Point("n", {}, {"u": UInt(3)}, 2)]
    assert [p for _, p in columns_from_points(pts).to_points()] == pts
    assert parse_columns(encode(pts)).to_points() == [(1, pts[0]), (2, pts[1])]


def test_reserved_and_clashing_keys_are_rejected_per_line():
    batch = parse_columns("m,k=v k=1 1\nm time=1 2\nm ok=1 3\n", bulk_min_lines=0)
    assert [e.line for e in batch.errors] == [1, 2]
    assert "both a tag and a field" in batch.errors[0].reason and "reserved" in batch.errors[1].reason


_fragment = st.sampled_from(
    [
        "m",
        "cpu",
        "a",
        "k",
        "=",
        ",",
        " ",
        "  ",
        "1",
        "-2",
        "1.5",
        "e3",
        "i",
        "u",
        "t",
        "false",
        '"',
        '"x y"',
        "\\",
        "\\ ",
        "#",
        "\t",
        "\r",
        "é",
        "9223372036854775808",
        ".",
    ]
)


@st.composite
def payloads(draw):
    lines = []
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["valid", "valid", "garbage", "template"]))
        if kind == "valid":
            lines.append(encode([draw(points())]).rstrip("\n"))
        elif kind == "template":
            tag = draw(st.sampled_from(["", ",h=a", ",h=b,z=1", ",h="]))
            val = draw(st.sampled_from(["1", "2.5", "3i", "4u", "t", "x", "1e999", "-1u", ""]))
            ts = draw(st.sampled_from([" 10", " -5", "", " 1x", " 99999999999999999999"]))
            lines.append(f"cpu{tag} v={val},w=1{ts}")
        else:
            lines.append("".join(draw(st.lists(_fragment, max_size=10))))
    return draw(st.sampled_from(["\n", "\r\n"])).join(lines) + draw(st.sampled_from(["", "\n"]))


@settings(max_examples=200, deadline=None)
@given(payloads(), st.sampled_from([None, 7]), st.sampled_from(["ns", "s"]))
def test_bulk_parser_agrees_with_the_exact_scanner(data, default_time, precision):
    assert_agree(data, default_time, precision)


def assert_agree(data: str, default_time: int | None, precision: str) -> None:
    exact_points, exact_errors = parse_numbered(data, precision=precision, default_time=default_time)
    batch = parse_columns(data, precision=precision, default_time=default_time, bulk_min_lines=0)
    small = parse_columns(data, precision=precision, default_time=default_time, bulk_min_lines=10**9)
    assert small.to_points() == batch.to_points()
    assert [(e.line, e.column, e.reason) for e in small.errors] == [
        (e.line, e.column, e.reason) for e in batch.errors
    ]
    clashes = {line for line, p in exact_points if lpc._point_error(line, p)}
    want = [(ln, p) for ln, p in exact_points if ln not in clashes]
    got = batch.to_points()
    assert [(ln, typed([p])) for ln, p in got] == [(ln, typed([p])) for ln, p in want]
    parse_errors = [(e.line, e.column, e.reason) for e in batch.errors if e.line not in clashes]
    assert parse_errors == [(e.line, e.column, e.reason) for e in exact_errors]


_value = st.sampled_from(
    [
        "1",
        "-2.5",
        "+3",
        ".5",
        "5.",
        "1e3",
        "nan",
        "inf",
        "1e999",
        "",
        "7i",
        "-7i",
        "8u",
        "t",
        "FALSE",
        "x",
        "1_0",
        "0x1",
        "9223372036854775808i",
        "NA",
        "null",
        "é",
    ]
)
_tag_value = st.sampled_from(["a", "b", "", "NA", "é漢", "x=y", "1"])
_key = st.sampled_from(["host", "h", "f", "g", "Host", "é", "time", "~0", "t0", "f0", "ts"])


@st.composite
def uniform_payloads(draw):
    """Many lines of one shape (the uniform fast path), with values and keys sometimes off."""
    tags = draw(st.lists(_key, max_size=2, unique=True))
    fields = draw(st.lists(_key, min_size=1, max_size=3, unique=True))
    ts = draw(st.sampled_from(["", " 10", " -3", " +4", " 99999999999999999999", " x"]))
    lines = []
    for _ in range(draw(st.integers(1, 30))):
        meas = draw(st.sampled_from(["cpu"] * 8 + ["mem", "cpu="]))
        tag_part = "".join(f",{draw(st.sampled_from([t] * 5 + ['z']))}={draw(_tag_value)}" for t in tags)
        field_part = ",".join(f"{f}={draw(_value)}" for f in fields)
        lines.append(f"{meas}{tag_part} {field_part}{ts}")
    return "\n".join(lines) + draw(st.sampled_from(["", "\n"]))


@settings(max_examples=200, deadline=None)
@given(uniform_payloads(), st.sampled_from([None, 7]))
def test_uniform_fast_path_agrees_with_the_exact_scanner(data, default_time):
    assert_agree(data, default_time, "ms")


def test_a_uniform_payload_is_one_group_read_in_bulk(monkeypatch):
    monkeypatch.setattr(
        lpc, "scan", lambda *a, **k: (_ for _ in ()).throw(AssertionError("exact scanner used"))
    )
    data = "".join(f"cpu,host=h{i % 3},dc=é usage={i}.5,n={i}i,ok=true {i}\n" for i in range(300))
    batch = parse_columns(data)
    assert len(batch.groups) == 1 and batch.points == 300 and batch.errors == []
    assert batch.groups[0].table.column("n").to_pylist()[:3] == [0, 1, 2]
    assert batch.to_points() == parse_numbered(data)[0]


def test_a_mixed_flush_is_read_per_measurement_in_bulk(monkeypatch):
    monkeypatch.setattr(
        lpc, "scan", lambda *a, **k: (_ for _ in ()).throw(AssertionError("exact scanner used"))
    )
    monkeypatch.setattr(
        lpc, "_split_lines", lambda *a: (_ for _ in ()).throw(AssertionError("general path used"))
    )
    kinds = ["cpu,host=a,cpu=cpu{i} usage=0.{i}", "mem,host=a used={i}i", "gpu,index={i} util={i}u,ok=t"]
    data = "\n".join(kinds[i % 3].format(i=i) + f" {i}" for i in range(120)) + "\n\n"
    batch = parse_columns(data)
    assert sorted(g.measurement for g in batch.groups) == ["cpu", "gpu", "mem"]
    assert batch.to_points() == parse_numbered(data)[0]


@pytest.mark.parametrize(
    "odd_line",
    [
        "cpu,host=a,rack=b gpu1_util=2,gpu0_util=1 5",  # same-length field keys swapped
        "cpu,rack=b,host=a gpu0_util=1,gpu1_util=2 5",  # same-length tag keys swapped
        "cpu,host=a,rack=b gpu0_util=1,gpu0_utiL=2 5",  # a key differing in its 9th byte
        "cpx,host=a,rack=b gpu0_util=1,gpu1_util=2 5",  # another measurement of the same length
    ],
)
def test_the_uniform_path_checks_every_key_byte_in_place(odd_line):
    """Keys are compared in place on each line: a line whose keys are swapped or differ in one
    byte anywhere must not have its values read into the first line's columns."""
    lines = [f"cpu,host=a,rack=b gpu0_util={i},gpu1_util={i + 1} {i}" for i in range(200)]
    lines[137] = odd_line
    data = "\n".join(lines) + "\n"
    assert lpu.parse_uniform(data.encode(), 1, None) is None
    assert parse_columns(data).to_points() == parse_numbered(data)[0]


def test_a_uniform_payload_larger_than_one_arrow_block_reads_every_line(monkeypatch):
    monkeypatch.setattr(lpu, "BLOCK_BYTES", 4096)  # many blocks, each parsed on Arrow's pool
    data = "".join(f"cpu,host=h{i % 7} usage={i}.25,n={i}i {i}\n" for i in range(3000))
    batch = parse_columns(data)
    assert len(batch.groups) == 1 and batch.points == 3000
    assert batch.to_points() == parse_numbered(data)[0]

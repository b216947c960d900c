"""A parser of the Prometheus text exposition format (0.0.4) and its mapping to points.

Mapping (Telegraf's ``prometheus`` input, ``metric_version = 1``): one measurement per metric
family, labels become tags, and

* counter → field ``counter``; gauge → ``gauge``; untyped → ``value``;
* summary → ``count``, ``sum`` and one field per quantile, named by the quantile (``0.5``);
* histogram → ``count``, ``sum``, one cumulative field per bucket named by its upper bound
  (``0.005`` … ``+Inf``), and estimated quantiles ``p50``/``p90``/``p99`` computed like PromQL's
  ``histogram_quantile`` (linear interpolation inside the bucket).

NaN and ±Inf sample values cannot be written as line protocol; those fields are left out (a
summary with no observations reports NaN quantiles). Empty label values are absent labels, as in
Prometheus. A malformed line fails the whole scrape with its line number, as Prometheus does.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from tsdb.point import Point

_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_RE = re.compile(r"\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*\"")
_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count"),
             "counter": ("_total", "_created")}


class ExpositionError(ValueError):
    def __init__(self, message: str, line: int):
        self.line = line
        super().__init__(f"line {line}: {message}")


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float
    timestamp_ms: int | None = None


@dataclass
class Family:
    name: str
    type: str = "untyped"
    help: str = ""
    samples: list[Sample] = field(default_factory=list)


def _unescape_label(s: str, i: int, lineno: int) -> tuple[str, int]:
    out = []
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            out.append({"n": "\n", "\\": "\\", '"': '"'}.get(s[i + 1], "\\" + s[i + 1]))
            i += 2
        elif c == '"':
            return "".join(out), i + 1
        else:
            out.append(c)
            i += 1
    raise ExpositionError("unterminated label value", lineno)


def _labels(s: str, i: int, lineno: int) -> tuple[dict[str, str], int]:
    labels: dict[str, str] = {}
    while True:
        while i < len(s) and s[i] in " \t":
            i += 1
        if i < len(s) and s[i] == "}":
            return labels, i + 1
        m = _LABEL_RE.match(s, i)
        if not m:
            raise ExpositionError(f"expected a label name=\"value\" at column {i + 1}", lineno)
        labels[m.group(1)], i = _unescape_label(s, m.end(), lineno)
        while i < len(s) and s[i] in " \t":
            i += 1
        if i < len(s) and s[i] == ",":
            i += 1
        elif not (i < len(s) and s[i] == "}"):
            raise ExpositionError(f"expected ',' or '}}' at column {i + 1}", lineno)


def _number(text: str, lineno: int, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ExpositionError(f"invalid {what} {text!r}", lineno) from None


def parse_sample(line: str, lineno: int) -> Sample:
    m = _NAME_RE.match(line)
    if not m:
        raise ExpositionError(f"expected a metric name, got {line[:40]!r}", lineno)
    labels, i = ({}, m.end())
    if i < len(line) and line[i] == "{":
        labels, i = _labels(line, i + 1, lineno)
    rest = line[i:].split()
    if not 1 <= len(rest) <= 2:
        raise ExpositionError(f"expected a value and an optional timestamp after {m.group()!r}", lineno)
    value = _number(rest[0], lineno, "value")
    ts = int(_number(rest[1], lineno, "timestamp")) if len(rest) == 2 else None
    return Sample(m.group(), labels, value, ts)


def _family_of(name: str, families: dict[str, Family]) -> Family:
    if name in families:
        return families[name]
    for fam_type, suffixes in _SUFFIXES.items():
        for suf in suffixes:
            base = name[: -len(suf)]
            if name.endswith(suf) and base in families and families[base].type == fam_type:
                return families[base]
    families[name] = Family(name)
    return families[name]


def _comment(line: str, lineno: int, families: dict[str, Family]) -> None:
    parts = line[1:].strip().split(None, 2)
    if len(parts) < 2 or parts[0] not in ("HELP", "TYPE"):
        return
    fam = families.setdefault(parts[1], Family(parts[1]))
    if parts[0] == "HELP":
        fam.help = parts[2] if len(parts) > 2 else ""
        return
    kind = parts[2].strip() if len(parts) > 2 else ""
    if kind not in ("counter", "gauge", "histogram", "summary", "untyped"):
        raise ExpositionError(f"unknown metric type {kind!r} for {parts[1]}", lineno)
    fam.type = kind


def parse_text(text: str) -> list[Family]:
    """The metric families of an exposition, in order of first appearance."""
    families: dict[str, Family] = {}
    for lineno, raw in enumerate(text.split("\n"), 1):  # only \n ends a line
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            _comment(line, lineno, families)
            continue
        sample = parse_sample(line, lineno)
        _family_of(sample.name, families).samples.append(sample)
    return [f for f in families.values() if f.samples]


# ----------------------------------------------------------------------------- to points


def clean_tags(labels: Mapping[str, str], drop: Iterable[str] = ()) -> dict[str, str]:
    """Labels as line-protocol-safe tags: empty values dropped, newlines replaced by spaces."""
    out = {}
    for k, v in labels.items():
        if k in drop:
            continue
        v = v.replace("\r", " ").replace("\n", " ").rstrip("\\")
        if v:
            out[k] = v
    return out


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """PromQL's ``histogram_quantile`` on ``[(upper_bound, cumulative_count)]`` sorted by bound."""
    if len(buckets) < 2 or not math.isinf(buckets[-1][0]):
        return math.nan
    total = buckets[-1][1]
    if total <= 0:
        return math.nan
    rank = q * total
    b = next(i for i, (_, c) in enumerate(buckets) if c >= rank)
    if b == len(buckets) - 1:
        return buckets[-2][0]
    if b == 0 and buckets[0][0] <= 0:
        return buckets[0][0]
    start, prev = (0.0, 0.0) if b == 0 else buckets[b - 1]
    end, count = buckets[b][0], buckets[b][1] - prev
    return end if count <= 0 else start + (end - start) * (rank - prev) / count


def _finite(fields: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in fields.items() if math.isfinite(v)}


def _time(sample: Sample, now_ns: int) -> int:
    return sample.timestamp_ms * 1_000_000 if sample.timestamp_ms is not None else now_ns


def _simple_points(fam: Family, measurement: str, tags: dict, now_ns: int) -> list[Point]:
    key = {"counter": "counter", "gauge": "gauge"}.get(fam.type, "value")
    out = []
    for s in fam.samples:
        fields = _finite({key: s.value})
        if fields:
            out.append(Point(measurement, {**tags, **clean_tags(s.labels)}, fields, _time(s, now_ns)))
    return out


def _grouped(fam: Family, drop: str) -> dict[tuple, list[Sample]]:
    groups: dict[tuple, list[Sample]] = {}
    for s in fam.samples:
        key = tuple(sorted(clean_tags(s.labels, drop=(drop,)).items()))
        groups.setdefault(key, []).append(s)
    return groups


def _le_key(s: Sample) -> float:
    return _number(s.labels.get("le", "nan"), 0, "le")


def _complex_fields(fam: Family, samples: list[Sample], quantiles: Sequence[float]) -> dict[str, float]:
    fields: dict[str, float] = {}
    buckets = []
    for s in samples:
        if s.name.endswith("_sum"):
            fields["sum"] = s.value
        elif s.name.endswith("_count"):
            fields["count"] = s.value
        elif fam.type == "histogram" and "le" in s.labels:
            fields[s.labels["le"]] = s.value
            buckets.append((_le_key(s), s.value))
        elif fam.type == "summary" and "quantile" in s.labels:
            fields[s.labels["quantile"]] = s.value
    if fam.type == "histogram":
        buckets.sort()
        for q in quantiles:
            fields[f"p{q * 100:g}"] = histogram_quantile(q, buckets)
    return _finite(fields)


def family_points(fam: Family, now_ns: int, *, prefix: str = "", tags: Mapping[str, str] | None = None,
                  quantiles: Sequence[float] = (0.5, 0.9, 0.99)) -> list[Point]:
    measurement, base = prefix + fam.name, dict(tags or {})
    if fam.type not in ("histogram", "summary"):
        return _simple_points(fam, measurement, base, now_ns)
    drop = "le" if fam.type == "histogram" else "quantile"
    out = []
    for key, samples in _grouped(fam, drop).items():
        fields = _complex_fields(fam, samples, quantiles)
        if fields:
            out.append(Point(measurement, {**base, **dict(key)}, fields, _time(samples[0], now_ns)))
    return out


def parse(raw: bytes | str, *, now_ns: int, prefix: str = "", tags: Mapping[str, str] | None = None,
          quantiles: Sequence[float] = (0.5, 0.9, 0.99)) -> list[Point]:
    """Points from an exposition body (pure; see the module docstring for the mapping)."""
    text = raw.decode("utf-8") if isinstance(raw, (bytes, bytearray)) else raw
    out: list[Point] = []
    for fam in parse_text(text):
        out += family_points(fam, now_ns, prefix=prefix, tags=tags, quantiles=quantiles)
    return out

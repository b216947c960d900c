"""Validate Grafana dashboard JSON against Grafana's own dashboard schema.

The schema is Grafana's, as generated into ``grafana-foundation-sdk`` (the 11.6 models). The
SDK's ``from_json`` keeps only the keys the schema knows, so a dashboard that survives
``from_json`` -> ``to_json`` unchanged uses only schema keys (panel options and field config
go through each panel plugin's own model), and :mod:`dashboards.schema_types` checks every
value against the type the schema declares (enums, scalars, lists, nested models). On top of that come the checks the schema cannot
express: uid format, unique panel ids, panels inside the 24-column grid, every ``$variable``
defined, and every query on the dashboard's datasource type.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterator

UID_RE = re.compile(r"^[A-Za-z0-9_-]{8,40}$")
_VAR_RE = re.compile(r"\$\{?(\w+)")
GRID_WIDTH = 24


def _sdk_round_trip(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The dashboard as the schema reads it back, and its values that do not fit their types."""
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.cog.plugins import register_default_plugins
    from grafana_foundation_sdk.models.dashboard import Dashboard

    from dashboards.schema_types import check_values

    register_default_plugins()  # the SDK's plugin table, needed to decode panel options
    model = Dashboard.from_json(data)
    return json.loads(JSONEncoder(sort_keys=True).encode(model)), list(check_values(model))


def _dropped(orig: Any, back: Any, path: str) -> Iterator[str]:
    """Keys or values of ``orig`` that the schema round trip lost or changed."""
    if isinstance(orig, dict) and isinstance(back, dict):
        for key, value in orig.items():
            if key not in back:
                yield f"{path}.{key}: not part of Grafana's dashboard schema"
            else:
                yield from _dropped(value, back[key], f"{path}.{key}")
    elif isinstance(orig, list) and isinstance(back, list) and len(orig) == len(back):
        for i, (a, b) in enumerate(zip(orig, back)):
            yield from _dropped(a, b, f"{path}[{i}]")
    elif orig != back:
        yield f"{path}: {orig!r} does not fit the schema (read back as {back!r})"


def _panels(data: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in data.get("panels") or []:
        out.append(p)
        out += p.get("panels") or []
    return out


def _grid_problems(panels: list[dict[str, Any]]) -> list[str]:
    problems, ids = [], [p.get("id") for p in panels]
    problems += [f"panel id {i} is used more than once" for i in sorted(set(ids), key=str) if ids.count(i) > 1]
    for p in panels:
        pos = p.get("gridPos") or {}
        x, w = pos.get("x", 0), pos.get("w", 0)
        if not isinstance(x, int) or not isinstance(w, int):
            continue  # reported by the type check
        if not pos or x + w > GRID_WIDTH:
            problems.append(f"panel {p.get('title')!r}: gridPos {pos} is not inside the {GRID_WIDTH}-column grid")
    return problems


def _query_texts(data: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], str]]:
    """(where, datasource ref, query text) of every panel target, annotation and variable."""
    for p in _panels(data):
        for t in p.get("targets") or []:
            yield f"panel {p.get('title')!r} {t.get('refId')}", t.get("datasource") or {}, \
                t.get("expr") or t.get("query") or ""
    for a in (data.get("annotations") or {}).get("list", []):
        target = a.get("target") or {}
        yield f"annotation {a.get('name')!r}", a.get("datasource") or {}, target.get("query") or ""
    for v in (data.get("templating") or {}).get("list", []):
        if v.get("type") == "query":
            yield f"variable {v.get('name')!r}", v.get("datasource") or {}, str(v.get("query") or "")


def _reference_problems(data: dict[str, Any], ds_type: str | None) -> list[str]:
    defined = {v.get("name") for v in (data.get("templating") or {}).get("list", [])}
    problems = []
    for where, ref, text in _query_texts(data):
        for name in _VAR_RE.findall(text):
            if not name.startswith("__") and name not in defined:
                problems.append(f"{where}: uses undefined variable ${name}")
        if ds_type and ref.get("type") not in (ds_type, "grafana"):
            problems.append(f"{where}: datasource type {ref.get('type')!r}, expected {ds_type!r}")
    return problems


def _without_query_targets(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` without annotation targets of query datasources.

    The schema types an annotation ``target`` after the built-in Grafana datasource only (its
    own comment: "this should be a regular DataQuery that depends on the selected dashboard");
    a datasource's annotation query such as Flux is a data query, which the schema leaves open.
    """
    annotations = []
    for a in (data.get("annotations") or {}).get("list", []):
        if (a.get("datasource") or {}).get("type") != "grafana":
            a = {k: v for k, v in a.items() if k != "target"}
        annotations.append(a)
    return {**data, "annotations": {**(data.get("annotations") or {}), "list": annotations}}


def validate(data: dict[str, Any], ds_type: str | None = None) -> list[str]:
    """Every problem found in a dashboard JSON model; empty when it is valid."""
    uid = data.get("uid")
    problems = [] if isinstance(uid, str) and UID_RE.match(uid) else [f"uid {uid!r}: expected 8-40 of [A-Za-z0-9_-]"]
    checked = _without_query_targets(data)
    try:
        back, type_problems = _sdk_round_trip(checked)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        return problems + [f"does not decode as a Grafana dashboard: {type(e).__name__}: {e}"]
    problems += list(_dropped(checked, back, "dashboard")) + type_problems
    problems += _grid_problems(_panels(data))
    return problems + _reference_problems(data, ds_type)

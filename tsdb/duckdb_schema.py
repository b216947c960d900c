"""The embedded store's catalog: which measurements exist, their tag and field columns and types.

Layout inside the DuckDB file:

* ``hot."<measurement>"`` — one table per measurement: ``time TIMESTAMP_NS`` (UTC), one
  ``VARCHAR`` column per tag, one typed column per field (``DOUBLE``, ``BIGINT``, ``UBIGINT``,
  ``BOOLEAN``, ``VARCHAR``), as InfluxDB 3 lays out its tables;
* ``main."<measurement>"`` — a view over the hot table and the measurement's Parquet files
  (cold tier, see :mod:`tsdb.retention`); this is what SQL users query;
* ``mlpulse.columns`` — which columns are tags and which fields (types come from the table);
* ``mlpulse.cold_files`` — the Parquet files of the cold tier.

DuckDB identifiers are case-insensitive, so two names differing only in case cannot both be
stored; such a write is rejected with a message saying so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from tsdb.base import FieldTypeConflict
from tsdb.lineprotocol_columns import LINE, TIME, Group, type_name

DUCK_TYPES = {
    "float": "DOUBLE",
    "integer": "BIGINT",
    "unsigned": "UBIGINT",
    "boolean": "BOOLEAN",
    "string": "VARCHAR",
}
LP_TYPES = {v: k for k, v in DUCK_TYPES.items()}

META_DDL = (
    "CREATE SCHEMA IF NOT EXISTS hot",
    "CREATE SCHEMA IF NOT EXISTS mlpulse",
    (
        "CREATE TABLE IF NOT EXISTS mlpulse.columns (measurement VARCHAR, name VARCHAR, kind VARCHAR, "
        "lp_type VARCHAR, PRIMARY KEY (measurement, name))"
    ),
    (
        "CREATE TABLE IF NOT EXISTS mlpulse.cold_files (measurement VARCHAR, path VARCHAR PRIMARY KEY, "
        "min_time BIGINT, max_time BIGINT, rows BIGINT)"
    ),
)


def qi(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Column:
    kind: str  # "tag" or "field"
    lp_type: str  # float, integer, unsigned, boolean, string (tags: string)

    @property
    def sql_type(self) -> str:
        return DUCK_TYPES[self.lp_type]


@dataclass
class Measurement:
    """The columns of one measurement (``time`` excluded)."""

    name: str
    columns: dict[str, Column] = field(default_factory=dict)

    @property
    def tags(self) -> list[str]:
        return sorted(c for c, col in self.columns.items() if col.kind == "tag")

    @property
    def fields(self) -> dict[str, str]:
        return {c: col.lp_type for c, col in sorted(self.columns.items()) if col.kind == "field"}


def load_catalog(con) -> dict[str, Measurement]:
    """Read the catalog from the database."""
    out: dict[str, Measurement] = {}
    rows = con.execute("SELECT measurement, name, kind, lp_type FROM mlpulse.columns ORDER BY ALL").fetchall()
    for m, name, kind, lp_type in rows:
        out.setdefault(m, Measurement(m)).columns[name] = Column(kind, lp_type)
    return out


@dataclass
class Plan:
    """What to do for one measurement of a write: the rows to store and the schema changes."""

    measurement: str
    table: pa.Table | None
    tags: list[str]
    new_columns: dict[str, Column]
    create: bool
    rejected: list[tuple[int, str]]


def _clash(name: str, kind: str, lp_type: str, known: dict[str, Column], m: str) -> str | None:
    """Why a column cannot be added to / written into ``known``, or None."""
    if name.lower() == TIME:
        return f"measurement {m!r}: key {name!r} collides with the time column"
    col = known.get(name)
    if col is None:
        other = next((k for k in known if k.lower() == name.lower()), None)
        if other is not None:
            return (
                f"measurement {m!r}: key {name!r} collides with {other!r} (names are case-insensitive here)"
            )
        return None
    if col.kind != kind:
        return f"measurement {m!r}: key {name!r} is stored as a {col.kind}, the write has it as a {kind}"
    if col.lp_type != lp_type:
        return str(FieldTypeConflict(m, name, col.lp_type, lp_type))
    return None


def _group_columns(g: Group) -> dict[str, Column]:
    cols = {}
    for f in g.table.schema:
        if f.name in (TIME, LINE):
            continue
        kind = "tag" if f.name in g.tags else "field"
        cols[f.name] = Column(kind, "string" if kind == "tag" else type_name(f.type))
    return cols


def _reject_group(g: Group, reason: str) -> list[tuple[int, str]]:
    return [(int(line), reason) for line in g.table.column(LINE).to_pylist()]


def plan_measurement(name: str, groups: list[Group], catalog: dict[str, Measurement]) -> Plan:
    """Check the groups of one measurement against the stored schema and each other.

    Groups are taken in order of their first line; a group whose column kind or type differs from
    the stored one (or from an earlier group's) is rejected as a whole, with the reason per line.
    """
    stored = catalog.get(name)
    other = next((m for m in catalog if m.lower() == name.lower() and m != name), None)
    if other is not None:
        reason = f"measurement {name!r} collides with {other!r} (names are case-insensitive here)"
        return Plan(name, None, [], {}, False, [r for g in groups for r in _reject_group(g, reason)])
    known = dict(stored.columns) if stored else {}
    new: dict[str, Column] = {}
    kept: list[Group] = []
    rejected: list[tuple[int, str]] = []
    for g in sorted(groups, key=Group.first_line):
        cols = _group_columns(g)
        reason = next(
            (r for c, col in cols.items() if (r := _clash(c, col.kind, col.lp_type, known, name))), None
        )
        if reason:
            rejected += _reject_group(g, reason)
            continue
        for c, col in cols.items():
            if c not in known:
                known[c] = new[c] = col
        kept.append(g)
    table = pa.concat_tables([g.table for g in kept], promote_options="default") if kept else None
    tags = sorted(c for c, col in known.items() if col.kind == "tag")
    return Plan(name, table, tags, new, stored is None and table is not None, rejected)


def apply_ddl(con, plan: Plan) -> None:
    """Create the hot table or add the new columns, and record them in the catalog."""
    m = qi(plan.measurement)
    if plan.create:
        cols = ", ".join(f"{qi(c)} {col.sql_type}" for c, col in plan.new_columns.items())
        con.execute(f"CREATE TABLE hot.{m} (time TIMESTAMP_NS, {cols})")
    else:
        for c, col in plan.new_columns.items():
            con.execute(f"ALTER TABLE hot.{m} ADD COLUMN {qi(c)} {col.sql_type}")
    rows = [(plan.measurement, c, col.kind, col.lp_type) for c, col in plan.new_columns.items()]
    if rows:
        con.executemany("INSERT INTO mlpulse.columns VALUES (?, ?, ?, ?)", rows)


def updated_catalog(catalog: dict[str, Measurement], plans: list[Plan]) -> dict[str, Measurement]:
    """A new catalog with the plans' columns added (the old one is left untouched for readers)."""
    out = dict(catalog)
    for p in plans:
        if p.new_columns:
            old = catalog.get(p.measurement)
            out[p.measurement] = Measurement(p.measurement, {**(old.columns if old else {}), **p.new_columns})
    return out

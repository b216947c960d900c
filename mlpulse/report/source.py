"""Where the report reads from, and the time range it covers."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from mlpulse.types import SecretRef, parse_duration
from tsdb.point import to_ns


def _instant(text: str, now: datetime) -> datetime:
    if text.strip().lower() == "now":
        return now
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r}: expected 'now' or an ISO time such as 2025-01-31T12:00:00Z") from None
    if when.tzinfo is None:
        raise ValueError(f"{text!r}: give a timezone, e.g. 2025-01-31T12:00:00Z")
    return when


def time_range(since: str, until: str = "now", now: datetime | None = None) -> tuple[int, int]:
    """[start, end) in ns: ``until`` is 'now' or an ISO time; ``since`` a duration before it
    (``6h``) or an ISO time."""
    now = now or datetime.now(timezone.utc)
    end = _instant(until, now)
    try:
        start = end - parse_duration(since)
    except ValueError:
        start = _instant(since, now)
    if start >= end:
        raise ValueError(f"empty time range: --since {since} is not before --until {until}")
    return to_ns(start), to_ns(end)


def open_source(url: str | None = None, data: Path | None = None, backend: str = "serve",
                token_env: str | None = None, org: str | None = None, bucket: str | None = None):
    """What to read: the embedded store in ``data``, or the server at ``url`` — ``mlpulse serve``
    (``backend='serve'``) or a storage backend by its entry-point name."""
    from tsdb import open_backend
    from tsdb.config import StorageConfig

    if data is not None:
        return open_backend(StorageConfig(backend="duckdb", path=Path(data)))
    token = SecretRef(env=token_env) if token_env else None
    if backend == "serve":
        from mlpulse.report.serve import ServeReader

        return ServeReader(url, token.resolve().get() if token else None)
    return open_backend(StorageConfig(backend=backend, url=url, token=token, org=org, bucket=bucket))

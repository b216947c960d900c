"""Where the sink's batches go: an InfluxDB-v2-compatible HTTP write endpoint or a Backend.

A transport's ``send(payload)`` returns a :class:`Rejected` summary (``None`` when everything was
stored) or raises one of :mod:`tsdb.http`'s classes:

* :class:`~tsdb.http.ThrottleError` / :class:`~tsdb.http.RetryableError`: nothing is known to be
  stored; the sink keeps the batch and retries later.
* :class:`~tsdb.http.PayloadTooLarge`: the sink splits the batch and sends each half.
* :class:`~tsdb.http.PermanentError` other than 400/422: the whole batch is refused (bad token,
  unknown bucket).

A 400/422 answer is a partial write: InfluxDB stores the good lines and reports
``dropped=N``; that becomes a :class:`Rejected` with the count and the server's message.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass

from tsdb.http import PermanentError, RetryableError, classify, from_transport

_DROPPED_RE = re.compile(r"dropped=(\d+)")
PARTIAL_STATUSES = (400, 422)


@dataclass(frozen=True)
class Rejected:
    """Points the target refused while storing the rest of the batch."""

    points: int
    reason: str
    message: str


def reason_of(message: str, status: int | None = None) -> str:
    """A short, low-cardinality reason key for a server message."""
    text = message.lower()
    for needle, key in (("type conflict", "field_type_conflict"), ("unable to parse", "parse_error"),
                        ("parse", "parse_error"), ("max-values", "limit"), ("limit", "limit"),
                        ("retention", "outside_retention")):
        if needle in text:
            return key
    return f"http_{status}" if status else "rejected"


class HttpTransport:
    """POSTs gzip line protocol to ``{url}/api/v2/write`` (mlpulse serve, InfluxDB 2, VictoriaMetrics)."""

    def __init__(self, url: str, *, token: str | None = None, org: str | None = None,
                 bucket: str | None = None, precision: str = "ns", timeout: float = 10.0,
                 gzip_level: int = 1):
        import httpx

        self.url = url.rstrip("/") + "/api/v2/write"
        params = {"precision": precision}
        params.update({k: v for k, v in (("org", org), ("bucket", bucket)) if v})
        headers = {"Content-Type": "text/plain; charset=utf-8", "Content-Encoding": "gzip"}
        if token:
            headers["Authorization"] = f"Token {token}"
        self.gzip_level = gzip_level
        self._client = httpx.Client(params=params, headers=headers, timeout=timeout)
        self._httpx = httpx

    def send(self, payload: bytes, points: int) -> Rejected | None:
        body = gzip.compress(payload, compresslevel=self.gzip_level)
        try:
            resp = self._client.post(self.url, content=body)
        except self._httpx.HTTPError as e:
            raise from_transport(e, self.url) from e
        err = classify(resp.status_code, resp.content, resp.headers, self.url)
        if err is None:
            return None
        if resp.status_code in PARTIAL_STATUSES:
            return _partial(err.message, points, resp.status_code)
        raise err

    def close(self) -> None:
        self._client.close()


def _partial(message: str, points: int, status: int) -> Rejected:
    """What a 400/422 refused: ``dropped=N`` when the server says so, else the whole batch."""
    m = _DROPPED_RE.search(message)
    dropped = min(int(m.group(1)), points) if m else points
    return Rejected(dropped, reason_of(message, status), message)


class BackendTransport:
    """Writes batches straight into an in-process :class:`tsdb.base.Backend`."""

    def __init__(self, backend, *, precision: str = "ns"):
        self.backend, self.precision = backend, precision

    def send(self, payload: bytes, points: int) -> Rejected | None:
        from tsdb.base import StorageError

        try:
            result = self.backend.write_lp(payload, precision=self.precision)
        except StorageError as e:
            raise PermanentError(str(e)) from e
        except OSError as e:
            raise RetryableError(f"{type(e).__name__}: {e}") from e
        if not result.rejected:
            return None
        first = result.rejected[0][1]
        return Rejected(len(result.rejected), reason_of(first), first)

    def close(self) -> None:
        pass

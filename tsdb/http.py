"""How every outbound HTTP integration classifies failure (STYLE G8).

The TSDB writers, the collector sink, Grafana push, notifiers and remediation webhooks all map a
failed request to one of three exceptions, and decide what to do from the class alone:

* :class:`PermanentError` — 400, 401, 403, 404, 422 and every other 4xx not listed below: the
  request will never succeed as sent. Drop the data and log the server's message.
  :class:`PayloadTooLarge` (413) is a permanent error that a batching writer can avoid by
  splitting the batch in half and sending each half.
* :class:`ThrottleError` — 429, 502, 503, 504: the server is overloaded or restarting. Wait at
  least ``retry_after`` seconds (from the ``Retry-After`` header when the server sent one) and
  try again.
* :class:`RetryableError` — 408, every other 5xx, and transport errors (connection refused or
  reset, timeouts, DNS): retry with backoff and jitter.

Use :func:`raise_for_status` on a response, or :func:`classify` on a status code and body, and
wrap transport errors with :func:`from_transport`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

PERMANENT_STATUSES = frozenset({400, 401, 403, 404, 422})
THROTTLE_STATUSES = frozenset({429, 502, 503, 504})
_MESSAGE_LIMIT = 500


class HTTPError(Exception):
    """A failed outbound request. ``status`` is None for transport errors."""

    def __init__(self, message: str, status: int | None = None, url: str | None = None):
        self.status, self.url, self.message = status, url, message
        where = f" from {url}" if url else ""
        code = f"HTTP {status}" if status is not None else "transport error"
        super().__init__(f"{code}{where}: {message}")


class PermanentError(HTTPError):
    """The request cannot succeed as sent; drop it and log the server's message."""


class PayloadTooLarge(PermanentError):
    """413: the body is too large; a batching writer splits it in half and retries each half."""


class ThrottleError(HTTPError):
    """The server asks us to slow down; retry after ``retry_after`` seconds (None: use backoff)."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        url: str | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message, status, url)
        self.retry_after = retry_after


class RetryableError(HTTPError):
    """A transient failure (other 5xx, 408, or a transport error); retry with backoff."""


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or an HTTP date).

    ``now`` (aware, UTC) is needed only for the date form; without it a date gives None.
    Unparseable values give None, so the caller falls back to its own backoff.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if now is None or when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def server_message(body: bytes | str | None) -> str:
    """The server's error message: InfluxDB/VictoriaMetrics JSON ``message``/``error`` or the text."""
    if body is None:
        return ""
    text = body.decode("utf-8", "replace") if isinstance(body, (bytes, bytearray)) else str(body)
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()[:_MESSAGE_LIMIT]
    if isinstance(data, dict):
        for key in ("message", "error", "msg"):
            if isinstance(data.get(key), str):
                return data[key][:_MESSAGE_LIMIT]
    return text.strip()[:_MESSAGE_LIMIT]


def classify(
    status: int,
    body: bytes | str | None = None,
    headers: Mapping[str, str] | None = None,
    url: str | None = None,
    now: datetime | None = None,
) -> HTTPError | None:
    """The exception for a response status, or None for a success (1xx-3xx)."""
    if status < 400:
        return None
    message = server_message(body) or f"status {status}"
    if status in THROTTLE_STATUSES:
        retry_after = parse_retry_after(_header(headers, "retry-after"), now)
        return ThrottleError(message, status, url, retry_after=retry_after)
    if status == 413:
        return PayloadTooLarge(message, status, url)
    if status == 408 or status >= 500:
        return RetryableError(message, status, url)
    return PermanentError(message, status, url)


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def raise_for_status(response, now: datetime | None = None) -> None:
    """Raise the classified error for an ``httpx``/``requests``-like response that failed."""
    err = classify(response.status_code, response.content, response.headers, str(response.url), now)
    if err is not None:
        raise err


def from_transport(exc: BaseException, url: str | None = None) -> RetryableError:
    """Wrap a transport failure (connection refused, timeout, DNS) as retryable."""
    return RetryableError(f"{type(exc).__name__}: {exc}", None, url)

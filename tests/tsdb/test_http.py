"""The shared HTTP failure classification (STYLE G8) and Retry-After parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.http_status_cases import HTTP_STATUS_CASES, SUCCESS_STATUSES, case_id
from tsdb.http import (
    PayloadTooLarge,
    PermanentError,
    RetryableError,
    ThrottleError,
    classify,
    from_transport,
    parse_retry_after,
    server_message,
)

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize("case", HTTP_STATUS_CASES, ids=case_id)
def test_the_shared_table(case):
    err = classify(case.status, case.body, case.headers, "http://x/api/v2/write")
    assert type(err) is case.expected
    assert err.status == case.status and err.message == "server says no"
    assert getattr(err, "retry_after", None) == case.retry_after
    assert str(err) == f"HTTP {case.status} from http://x/api/v2/write: server says no"


@pytest.mark.parametrize("status", SUCCESS_STATUSES + [301, 304])
def test_success_is_not_an_error(status):
    assert classify(status) is None


@given(st.integers(400, 599))
def test_every_failure_status_has_exactly_one_class(status):
    err = classify(status, b"")
    kinds = [k for k in (PermanentError, ThrottleError, RetryableError) if isinstance(err, k)]
    assert len(kinds) == 1
    assert isinstance(err, PayloadTooLarge) == (status == 413)
    if status in (429, 502, 503, 504):
        assert kinds == [ThrottleError]
    elif status >= 500 or status == 408:
        assert kinds == [RetryableError]
    else:
        assert kinds == [PermanentError]


@given(st.integers(0, 10**6))
def test_retry_after_seconds(seconds):
    assert parse_retry_after(str(seconds)) == float(seconds)
    assert classify(429, b"", {"retry-after": f" {seconds} "}).retry_after == float(seconds)


@given(st.integers(-3600, 86_400))
def test_retry_after_http_date_needs_a_clock(offset):
    header = format_datetime(NOW + timedelta(seconds=offset), usegmt=True)
    assert parse_retry_after(header, NOW) == max(0.0, float(offset))
    assert parse_retry_after(header) is None


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5e3"])
def test_unusable_retry_after_falls_back_to_backoff(value):
    assert parse_retry_after(value, NOW) is None


def test_server_messages_from_influxdb_victoriametrics_and_text():
    assert (
        server_message(b'{"code":"invalid","message":"unable to parse line 3"}') == "unable to parse line 3"
    )
    assert server_message('{"status":"error","error":"cannot parse query"}') == "cannot parse query"
    assert server_message(b"plain failure\n") == "plain failure"
    assert server_message(b"x" * 2000) == "x" * 500
    assert classify(500, b"").message == "status 500"


def test_transport_errors_are_retryable():
    err = from_transport(ConnectionRefusedError(111, "Connection refused"), "http://127.0.0.1:1")
    assert isinstance(err, RetryableError) and err.status is None
    assert str(err).startswith("transport error from http://127.0.0.1:1: ConnectionRefusedError")

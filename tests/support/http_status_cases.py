"""The shared status -> error-class table (STYLE G8), run against every outbound HTTP integration.

Each integration's tests serve these statuses from a real loopback server and assert that the
integration raises (or, for its own retry loop, reacts to) the expected class from
:mod:`tsdb.http`::

    @pytest.mark.parametrize("case", HTTP_STATUS_CASES, ids=case_id)
    def test_my_client_classifies(case, http_server):
        http_server.respond(case.status, case.body, case.headers)
        with pytest.raises(case.expected):
            my_client.send(...)

``retry_after`` is the delay a :class:`tsdb.http.ThrottleError` must carry (None: no header).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tsdb.http import PayloadTooLarge, PermanentError, RetryableError, ThrottleError


@dataclass(frozen=True)
class StatusCase:
    status: int
    expected: type[Exception]
    headers: dict[str, str] = field(default_factory=dict)
    retry_after: float | None = None
    body: bytes = b'{"code":"error","message":"server says no"}'


HTTP_STATUS_CASES: list[StatusCase] = [
    StatusCase(400, PermanentError),
    StatusCase(401, PermanentError),
    StatusCase(403, PermanentError),
    StatusCase(404, PermanentError),
    StatusCase(422, PermanentError),
    StatusCase(413, PayloadTooLarge),
    StatusCase(429, ThrottleError, {"Retry-After": "7"}, retry_after=7.0),
    StatusCase(429, ThrottleError),
    StatusCase(502, ThrottleError),
    StatusCase(503, ThrottleError, {"Retry-After": "2"}, retry_after=2.0),
    StatusCase(504, ThrottleError),
    StatusCase(500, RetryableError),
    StatusCase(501, RetryableError),
    StatusCase(507, RetryableError),
    StatusCase(408, RetryableError),
]

SUCCESS_STATUSES: list[int] = [200, 204]


def case_id(case: StatusCase) -> str:
    """A readable test id such as ``429-ThrottleError-retry7``."""
    extra = f"-retry{case.retry_after:g}" if case.retry_after is not None else ""
    return f"{case.status}-{case.expected.__name__}{extra}"

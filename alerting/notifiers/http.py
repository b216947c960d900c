"""One POST helper for every HTTP notifier and webhook action: target check, G8 classification."""

from __future__ import annotations

from datetime import datetime, timezone

import httpx

from alerting.targets import TargetRefused, check_url
from tsdb.http import PermanentError, from_transport, raise_for_status


def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float, allow_private: bool) -> httpx.Response:
    """POST ``body``; raise PermanentError/ThrottleError/RetryableError on failure."""
    try:
        check_url(url, allow_private=allow_private)
    except TargetRefused as e:
        raise PermanentError(str(e), None, url) from None
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            response = client.post(url, content=body, headers=headers)
    except httpx.HTTPError as e:
        raise from_transport(e, url) from None
    raise_for_status(response, now=datetime.now(timezone.utc))
    return response

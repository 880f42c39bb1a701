"""Retry policy for HTTP calls (pure pieces + the backoff decorator that applies them).

429, 408 and 5xx, timeouts, connection resets and malformed JSON are retried with exponential
backoff and full jitter, always waiting at least the server's Retry-After; other 4xx are not.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Generator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import backoff
import httpx

MAX_RETRY_AFTER_S = 600.0


class RetryableError(Exception):
    def __init__(self, message: str, retry_after: float | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.code = code


class FatalError(Exception):
    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, seconds)


def service_error(response: httpx.Response) -> tuple[str | None, str]:
    """(code, message) of an error answer shaped {"error": {"code", "message"}}."""
    try:
        error = response.json().get("error") or {}
        return error.get("code"), str(error.get("message") or "")[:500]
    except (ValueError, AttributeError):
        return None, response.text[:200]


def classify(response: httpx.Response) -> None:
    """Raise for a response that is not a success; RetryableError when trying again helps."""
    status = response.status_code
    if status < 400:
        return
    code, message = service_error(response)
    text = f"HTTP {status}" + (f" {code}" if code else "") + (f": {message}" if message else "")
    if status in (408, 429) or status >= 500:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if retry_after is not None and retry_after > MAX_RETRY_AFTER_S:
            raise FatalError(f"{text} (Retry-After {retry_after:.0f} s is too long)", code)
        raise RetryableError(text, retry_after, code or str(status))
    raise FatalError(text, code or str(status))


def json_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise RetryableError(f"malformed JSON from the service: {response.text[:80]!r}",
                             code="MalformedJSON") from None
    if not isinstance(body, dict):
        raise RetryableError("malformed JSON from the service: not an object",
                             code="MalformedJSON")
    return body


TRANSPORT_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


def wait_gen(base_s: float = 0.5, max_s: float = 30.0,
             rand: Callable[[float, float], float] = random.uniform
             ) -> Generator[float | None, Any, None]:
    """backoff wait generator: full-jitter exponential, never below the exception's
    Retry-After (backoff sends each exception in)."""
    attempt = 0
    exc = yield None
    while True:
        delay = rand(0.0, min(max_s, base_s * 2**attempt))
        retry_after = getattr(exc, "retry_after", None)
        attempt += 1
        exc = yield max(delay, retry_after) if retry_after is not None else delay


def retrying(max_tries: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator for an async call that raises RetryableError on what deserves a retry."""
    gen: Any = wait_gen  # backoff's stub wants Generator[float, None, None]; it sends values
    return backoff.on_exception(  # type: ignore[no-any-return]
        gen, RetryableError, max_tries=max_tries, jitter=None, raise_on_giveup=True,
        logger=None,
    )

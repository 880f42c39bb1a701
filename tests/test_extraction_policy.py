"""The retry policy and rate limiting, exactly, with httpx.MockTransport and fake clocks."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest

from shardrun.extraction import ExtractionProcessor
from shardrun.httpretry import parse_retry_after, wait_gen
from shardrun.processor import ItemError
from shardrun.ratelimit import SharedRate, TokenBucket
from shardrun.spec import ProcessorSpec

KEY = "test-key-0123456789"
BASE = "http://svc.test"


def spec(**overrides) -> ProcessorSpec:
    values = {"kind": "prebuilt-extraction", "endpoint": BASE, "max_attempts": 4,
              "timeout_s": 5.0, "concurrency": 2}
    values.update(overrides)
    return ProcessorSpec(**values)


@pytest.fixture(autouse=True)
def _fast_sleep(monkeypatch):
    """Record the waits instead of sleeping them."""
    waits: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(delay, *args, **kwargs):
        waits.append(delay)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    return waits


def run(handler, tmp_path: Path, item_name: str = "doc.pdf", **spec_overrides):
    document = tmp_path / item_name
    document.write_bytes(b"%PDF-1.4 hello")
    processor = ExtractionProcessor(spec(**spec_overrides), KEY, None, None,
                                    httpx.MockTransport(handler))

    async def go():
        await processor.start()
        try:
            return await processor.process({"id": "item-1", "path": str(document)})
        finally:
            await processor.close()

    outcome = asyncio.run(go())
    return {**outcome.result, "_attempts": outcome.attempts}


def service(script: list[httpx.Response], polls: list[httpx.Response] | None = None):
    """A handler answering POSTs from ``script`` and GETs from ``polls`` in order."""
    seen: list[httpx.Request] = []
    posts, gets = iter(script), iter(polls or [])

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "POST":
            return next(posts)
        return next(gets)

    return handler, seen


ACCEPTED = httpx.Response(202, headers={"Operation-Location": f"{BASE}/ops/1"})
DONE = httpx.Response(200, json={"status": "succeeded", "analyzeResult": {"content": "x"}})


def test_happy_path_sends_key_and_content_type(tmp_path) -> None:
    handler, seen = service([ACCEPTED], [httpx.Response(200, json={"status": "running"},
                                                        headers={"Retry-After": "2"}), DONE])
    result = run(handler, tmp_path)
    assert result["analyzeResult"] == {"content": "x"}
    post = seen[0]
    assert post.headers["Ocp-Apim-Subscription-Key"] == KEY
    assert post.headers["Content-Type"] == "application/pdf"
    assert post.url.path == "/documentintelligence/documentModels/prebuilt-layout:analyze"
    assert post.url.params["api-version"] == "2024-11-30"
    assert post.content == b"%PDF-1.4 hello"
    assert [r.method for r in seen] == ["POST", "GET", "GET"]


def test_429_waits_at_least_retry_after(tmp_path, _fast_sleep) -> None:
    throttled = httpx.Response(429, headers={"Retry-After": "7"},
                               json={"error": {"code": "429", "message": "slow down"}})
    handler, seen = service([throttled, throttled, ACCEPTED], [DONE])
    assert run(handler, tmp_path)["_attempts"] == 3
    assert [r.method for r in seen].count("POST") == 3
    assert _fast_sleep == [7.0, 7.0]  # the two backoff waits: jitter (<= 1 s) < Retry-After


def test_retry_after_as_http_date() -> None:
    now = datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC)
    header = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(header, now) == pytest.approx(30)
    assert parse_retry_after("12", now) == 12
    assert parse_retry_after("garbage", now) is None
    assert parse_retry_after(format_datetime(now - timedelta(seconds=5), usegmt=True), now) == 0


def test_wait_generator_never_goes_below_retry_after() -> None:
    class E(Exception):
        retry_after = 3.0

    gen = wait_gen(base_s=100, rand=lambda lo, hi: lo)  # jitter drawn at its minimum
    gen.send(None)
    assert gen.send(E()) == 3.0
    plain = wait_gen(base_s=1, max_s=8, rand=lambda lo, hi: hi)
    plain.send(None)
    assert [plain.send(RuntimeError()) for _ in range(5)] == [1, 2, 4, 8, 8]


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_server_errors_are_retried(tmp_path, status) -> None:
    handler, seen = service([httpx.Response(status), httpx.Response(status), ACCEPTED], [DONE])
    assert run(handler, tmp_path)["status"] == "succeeded"
    assert [r.method for r in seen].count("POST") == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 415])
def test_client_errors_are_not_retried(tmp_path, status) -> None:
    answer = httpx.Response(status, json={"error": {"code": "InvalidRequest",
                                                    "message": "bad document"}})
    handler, seen = service([answer])
    with pytest.raises(ItemError) as exc:
        run(handler, tmp_path)
    assert len(seen) == 1 and exc.value.attempts == 1
    assert f"HTTP {status} InvalidRequest: bad document" in str(exc.value)


def test_exhausted_retries_become_an_item_error_with_attempts(tmp_path) -> None:
    handler, seen = service([httpx.Response(503)] * 4)
    with pytest.raises(ItemError) as exc:
        run(handler, tmp_path)
    assert exc.value.attempts == 4 and len(seen) == 4 and "HTTP 503" in str(exc.value)


def test_connection_errors_and_timeouts_are_retried(tmp_path) -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            raise httpx.ConnectError("connection refused", request=request)
        if calls["n"] == 2:
            raise httpx.ReadTimeout("timed out", request=request)
        if calls["n"] == 3:
            raise httpx.RemoteProtocolError("peer closed connection", request=request)
        return ACCEPTED if request.method == "POST" else DONE

    assert run(handler, tmp_path)["status"] == "succeeded"
    assert calls["n"] == 5


def test_malformed_json_is_retried_then_recorded(tmp_path) -> None:
    broken = httpx.Response(200, content=b'{"status": "succ')
    handler, _ = service([ACCEPTED], [broken, DONE])
    assert run(handler, tmp_path)["status"] == "succeeded"
    handler, _ = service([ACCEPTED], [broken] * 4)
    with pytest.raises(ItemError, match="malformed JSON"):
        run(handler, tmp_path)


def test_failed_operation_keeps_the_service_code(tmp_path) -> None:
    failed = httpx.Response(200, json={"status": "failed", "error": {
        "code": "InvalidContent", "message": "corrupted"}})
    handler, _ = service([ACCEPTED], [failed])
    with pytest.raises(ItemError) as exc:
        run(handler, tmp_path)
    assert exc.value.code == "InvalidContent" and "InvalidContent: corrupted" in str(exc.value)


def test_the_key_never_appears_in_errors(tmp_path) -> None:
    echo = httpx.Response(401, json={"error": {"code": "Unauthorized",
                                               "message": f"key {KEY} is not valid"}})
    handler, _ = service([echo])
    with pytest.raises(ItemError) as exc:
        run(handler, tmp_path)
    assert KEY not in str(exc.value) and "[REDACTED]" in str(exc.value)


def test_unreadable_item_is_an_error_without_a_request(tmp_path) -> None:
    handler, seen = service([])
    processor = ExtractionProcessor(spec(), KEY, None, None, httpx.MockTransport(handler))

    async def go():
        await processor.start()
        try:
            await processor.process({"id": "x", "path": str(tmp_path / "missing.pdf")})
        finally:
            await processor.close()

    with pytest.raises(ItemError, match="cannot read"):
        asyncio.run(go())
    assert seen == []


def test_token_bucket_paces_to_the_rate() -> None:
    now = [0.0]

    async def sleep(delay: float) -> None:
        now[0] += delay

    async def go() -> list[float]:
        bucket = TokenBucket(lambda: 4.0, clock=lambda: now[0], sleep=sleep)
        times = []
        for _ in range(9):
            await bucket.acquire()
            times.append(now[0])
        return times

    times = asyncio.run(go())
    assert times[0] == 0.0 and times[-1] == pytest.approx(2.0)  # 1 at once, then 4/s


def test_shared_rate_follows_running_tasks_and_aimd() -> None:
    now = [0.0]
    running = [2]
    rate = SharedRate(50.0, lambda: running[0], refresh_s=5.0, clock=lambda: now[0])
    assert rate() == 25.0  # two tasks running: half each, whatever the array throttle
    running[0] = 1
    now[0] = 5.0
    assert rate() == 50.0  # the other one finished: the whole budget
    rate.throttled()
    rate.throttled()  # a burst of 429s in the same second counts once
    assert rate() == 25.0
    now[0] = 6.5
    rate.throttled()
    assert rate.multiplier == 0.25
    now[0] = 10.5  # 4 quiet seconds: additive increase
    assert rate() == pytest.approx(50.0 * 0.45)

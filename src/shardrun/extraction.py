"""The built-in ``kind = "prebuilt-extraction"`` processor: analyze, then poll.

POST the item's bytes to ``{endpoint}{analyze_path}?api-version=...`` (key in
``key_header``), then GET the ``Operation-Location`` until ``succeeded`` (its
``analyzeResult`` becomes the row's result) or ``failed`` (an error row with the service's
code). One httpx.AsyncClient per task; POSTs go through the job-wide rate share, polls through
a separate budget; retries follow httpretry's policy. The key is never logged or stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
import os
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from .errors import UsageError
from .httpretry import (
    TRANSPORT_ERRORS,
    FatalError,
    RetryableError,
    classify,
    json_body,
    parse_retry_after,
    retrying,
)
from .processor import ItemError, ItemResult
from .ratelimit import SharedRate, TokenBucket
from .spec import ProcessorSpec

POLL_DEFAULT_S = 1.0
MAX_UPLOAD_BYTES = 500 * 2**20  # the service's own limit; larger files are not even read
POLL_BUDGET_FACTOR = 3.0  # polls may use 3x the POST budget unless configured


class ExtractionProcessor:
    def __init__(self, spec: ProcessorSpec, api_key: str, post_rate: SharedRate | None,
                 poll_rate: SharedRate | None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.spec = spec
        self.api_key = api_key
        self.post_rate = post_rate
        self.post_bucket = TokenBucket(post_rate) if post_rate else None
        self.poll_bucket = TokenBucket(poll_rate) if poll_rate else None
        self.transport = transport
        self.client: httpx.AsyncClient | None = None
        self.url = (spec.endpoint.rstrip("/") + spec.analyze_path.format(model=spec.model))

    async def start(self) -> None:
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(self.spec.timeout_s),
            limits=httpx.Limits(max_connections=self.spec.concurrency * 2,
                                max_keepalive_connections=self.spec.concurrency * 2),
            transport=self.transport, headers={self.spec.key_header: self.api_key},
        )

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()

    def redact(self, text: str) -> str:
        return text.replace(self.api_key, "[REDACTED]") if self.api_key else text

    async def _send(self, method: str, url: str, request_id: str, **kwargs: Any
                    ) -> httpx.Response:
        assert self.client is not None
        headers = {"x-ms-client-request-id": request_id, **kwargs.pop("headers", {})}
        try:
            response = await self.client.request(method, url, headers=headers, **kwargs)
        except TRANSPORT_ERRORS as exc:
            raise RetryableError(f"{type(exc).__name__}: {self.redact(str(exc))[:200]}",
                                 code=type(exc).__name__) from None
        if response.status_code == 429 and self.post_rate is not None and method == "POST":
            self.post_rate.throttled()
        classify(response)
        return response

    async def _analyze(self, body: bytes, content_type: str, item_key: str) -> tuple[str, int]:
        tries = 0

        @retrying(self.spec.max_attempts)
        async def attempt() -> str:
            nonlocal tries
            tries += 1
            if self.post_bucket is not None:
                await self.post_bucket.acquire()
            response = await self._send(
                "POST", self.url, f"{item_key}-{uuid.uuid4().hex[:8]}",
                params={"api-version": self.spec.api_version}, content=body,
                headers={"Content-Type": content_type},
            )
            location = response.headers.get("Operation-Location")
            if not location:
                raise RetryableError("202 without an Operation-Location header",
                                     code="NoOperationLocation")
            return str(httpx.URL(self.spec.endpoint).join(location))

        try:
            return await attempt(), tries
        except (RetryableError, FatalError) as exc:
            raise ItemError(self.redact(str(exc)), attempts=tries,
                            code=getattr(exc, "code", None)) from None

    async def _poll(self, location: str, item_key: str, tries: int) -> dict[str, Any]:
        deadline = time.monotonic() + 10 * self.spec.timeout_s

        @retrying(self.spec.max_attempts)
        async def poll_once() -> tuple[dict[str, Any], float | None]:
            if self.poll_bucket is not None:
                await self.poll_bucket.acquire()
            response = await self._send("GET", location, f"{item_key}-poll")
            return json_body(response), parse_retry_after(response.headers.get("Retry-After"))

        while True:
            try:
                body, retry_after = await poll_once()
            except (RetryableError, FatalError) as exc:
                raise ItemError(self.redact(f"polling: {exc}"), attempts=tries,
                                code=getattr(exc, "code", None)) from None
            status = str(body.get("status", "")).lower()
            if status == "succeeded":
                return dict(body)
            if status == "failed":
                error = body.get("error") or {}
                code = str(error.get("code") or "OperationFailed")
                raise ItemError(self.redact(f"{code}: {error.get('message', '')}"[:500]),
                                attempts=tries, code=code)
            if status not in ("running", "notstarted", ""):
                raise ItemError(f"unexpected operation status {status!r}", attempts=tries)
            if time.monotonic() > deadline:
                raise ItemError(f"operation still {status} after {10 * self.spec.timeout_s:.0f}"
                                " s", attempts=tries, code="PollTimeout")
            await asyncio.sleep(retry_after if retry_after is not None else POLL_DEFAULT_S)

    async def process(self, item: dict[str, Any]) -> ItemResult:
        path = item.get("path")
        if not path:
            raise ItemError("item has no path to send", attempts=0, code="NoPath")
        try:
            size = os.stat(path).st_size
            if size > MAX_UPLOAD_BYTES:
                raise ItemError(f"{path} is {size} bytes, over the {MAX_UPLOAD_BYTES} byte "
                                "upload limit", attempts=0, code="TooLarge")
            body = await asyncio.to_thread(Path(path).read_bytes)
        except OSError as exc:
            raise ItemError(f"cannot read {path}: {exc.strerror}", attempts=0,
                            code="Unreadable") from None
        content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
        item_key = hashlib.sha1(str(item["id"]).encode()).hexdigest()[:16]
        location, tries = await self._analyze(body, content_type, item_key)
        result = await self._poll(location, item_key, tries)
        return ItemResult({"status": "succeeded", "model": self.spec.model,
                           "analyzeResult": result.get("analyzeResult")}, attempts=tries)


def make_extraction_processor(spec: ProcessorSpec, run_dir: Path | None = None,
                              expected_tasks: int = 1,
                              transport: httpx.AsyncBaseTransport | None = None
                              ) -> ExtractionProcessor:
    api_key = os.environ.get(spec.api_key_env)
    if not api_key:
        raise UsageError(f"[processor] api_key_env = {spec.api_key_env!r}: the environment "
                         "variable is not set (the key is read from the environment only)")

    def running() -> int:
        from .lease import live_leases

        return live_leases(run_dir) if run_dir is not None else 1

    post_rate = poll_rate = None
    if spec.rate_limit_per_s is not None:
        post_rate = SharedRate(spec.rate_limit_per_s, running, expected_tasks=expected_tasks)
    poll_limit = spec.poll_rate_limit_per_s or (
        spec.rate_limit_per_s * POLL_BUDGET_FACTOR if spec.rate_limit_per_s else None)
    if poll_limit is not None:
        poll_rate = SharedRate(poll_limit, running, expected_tasks=expected_tasks)
    return ExtractionProcessor(spec, api_key, post_rate, poll_rate, transport)

"""`shardrun serve-api`: a local emulator of an analyze-then-poll extraction API.

It speaks the protocol of Azure AI Document Intelligence's prebuilt models: POST the document
to ``/documentintelligence/documentModels/{model}:analyze`` -> ``202`` with an
``Operation-Location``; GET that URL -> ``{"status": "running"}`` (with ``Retry-After``) until
``succeeded`` (with ``analyzeResult``) or ``failed`` (with ``error.code``/``error.message``).
Past its rate limits it answers ``429`` with ``Retry-After``. It can inject faults (5xx,
stalls, connection resets, malformed JSON, failed operations) and counts everything at
``/stats``; ``/log`` lists recent requests (time, method, status, Retry-After, client request
id) so tests can check that clients honoured Retry-After. Loopback only.
"""

from __future__ import annotations

import json
import math
import random
import socket
import struct
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

ANALYZE_SUFFIX = ":analyze"


@dataclass
class EmulatorConfig:
    rate_per_s: float = 15.0  # POSTs accepted per second, then 429
    poll_rate_per_s: float = 50.0  # GETs per second, then 429
    latency_s: float = 0.2  # median time to accept a POST
    latency_sigma: float = 0.3  # lognormal spread of that latency
    poll_delay_s: float = 0.5  # how long an operation runs before it is done
    retry_after_s: int = 1  # what 429s and running polls advise
    fail_rate: float = 0.0  # POSTs answered 500/503
    reset_rate: float = 0.0  # POSTs whose connection is reset
    stall_rate: float = 0.0  # POSTs that hang for stall_s before answering
    stall_s: float = 30.0
    malformed_rate: float = 0.0  # polls answered with broken JSON
    failed_op_rate: float = 0.0  # operations that end "failed"
    api_key: str | None = None  # required Ocp-Apim-Subscription-Key, if set
    max_body_bytes: int = 500 * 2**20  # larger documents get 413
    leak_key_in_errors: bool = False  # a careless service that echoes the key in errors
    key_header: str = "Ocp-Apim-Subscription-Key"
    seed: int | None = None


class Bucket:
    """A token bucket holding at most one second of tokens (thread-safe)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = max(1.0, rate)
        self.last = time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(max(1.0, self.rate), self.tokens + (now - self.last) * self.rate)
            self.last = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return True
            return False


@dataclass
class Operation:
    ready_at: float
    outcome: str  # "succeeded" | "failed"
    pages: int
    size: int
    model: str


@dataclass
class EmulatorState:
    config: EmulatorConfig
    posts: Bucket = field(init=False)
    polls: Bucket = field(init=False)
    operations: dict[str, Operation] = field(default_factory=dict)
    counters: Counter[str] = field(default_factory=Counter)
    log: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=200_000))
    lock: threading.Lock = field(default_factory=threading.Lock)
    rng: random.Random = field(init=False)
    started: float = field(default_factory=time.time)
    first_accept: float | None = None
    last_accept: float | None = None

    def __post_init__(self) -> None:
        self.posts = Bucket(self.config.rate_per_s)
        self.polls = Bucket(self.config.poll_rate_per_s)
        self.rng = random.Random(self.config.seed)

    def chance(self, rate: float) -> bool:
        with self.lock:
            return rate > 0 and self.rng.random() < rate

    def record(self, method: str, status: int, request_id: str | None,
               retry_after: int | None = None) -> None:
        with self.lock:
            self.counters[f"{method} {status}"] += 1
            self.counters["requests"] += 1
            self.log.append({"t": time.time(), "method": method, "status": status,
                             "retry_after": retry_after, "request_id": request_id})

    def stats(self) -> dict[str, Any]:
        with self.lock:
            accepted = self.counters["POST 202"]
            span = ((self.last_accept or 0) - (self.first_accept or 0)) if accepted > 1 else 0
            return {
                "accepted": accepted,
                "throttled": self.counters["POST 429"] + self.counters["GET 429"],
                "throttled_posts": self.counters["POST 429"],
                "by_status": {k: v for k, v in self.counters.items() if " " in k},
                "requests": self.counters["requests"],
                "operations": len(self.operations),
                "accept_rate_per_s": round((accepted - 1) / span, 3) if span > 0 else None,
                "config": {k: v for k, v in self.config.__dict__.items() if k != "api_key"},
            }


class Handler(BaseHTTPRequestHandler):
    server: EmulatorServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    # -- helpers -------------------------------------------------------------------------
    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None,
              raw: bytes | None = None) -> None:
        payload = raw if raw is not None else (
            b"" if body is None else json.dumps(body).encode())
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if payload:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _reset(self) -> None:
        # RST instead of FIN: the client sees "connection reset by peer"
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def _error(self, status: int, code: str, message: str, method: str,
               retry_after: int | None = None) -> None:
        state = self.server.state
        state.record(method, status, self.headers.get("x-ms-client-request-id"), retry_after)
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        self._send(status, {"error": {"code": code, "message": message}}, headers)

    def _authorised(self, method: str) -> bool:
        config = self.server.state.config
        if config.api_key is not None and self.headers.get(config.key_header) != config.api_key:
            self._error(401, "Unauthorized", "Access denied due to invalid subscription key.",
                        method)
            return False
        return True

    # -- routes --------------------------------------------------------------------------
    def do_POST(self) -> None:
        state, config = self.server.state, self.server.state.config
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = urlsplit(self.path).path
        if not path.endswith(ANALYZE_SUFFIX):
            return self._error(404, "NotFound", f"no route {path}", "POST")
        if not self._authorised("POST"):
            return None
        if not state.posts.take():
            return self._error(429, "TooManyRequests", "Rate limit exceeded.", "POST",
                               config.retry_after_s)
        if state.chance(config.reset_rate):
            state.record("POST", 0, self.headers.get("x-ms-client-request-id"))
            return self._reset()
        if state.chance(config.stall_rate):
            time.sleep(config.stall_s)
        if state.chance(config.fail_rate):
            status = state.rng.choice([500, 503])
            detail = (f" (request had {config.key_header}: {self.headers.get(config.key_header)})"
                      if config.leak_key_in_errors else "")
            return self._error(status, "InternalServerError", "Transient failure." + detail,
                               "POST", 1 if status == 503 else None)
        if length > config.max_body_bytes:
            return self._error(413, "InvalidContentLength", "The input image is too large.",
                               "POST")
        if not body:
            return self._error(400, "InvalidRequest", "The request body is empty.", "POST")
        with state.lock:
            latency = state.rng.lognormvariate(math.log(config.latency_s), config.latency_sigma)
        time.sleep(latency)
        model = path.rsplit("/", 1)[-1].removesuffix(ANALYZE_SUFFIX)
        op_id = uuid.uuid4().hex
        outcome = "failed" if state.chance(config.failed_op_rate) else "succeeded"
        with state.lock:
            state.operations[op_id] = Operation(time.monotonic() + config.poll_delay_s, outcome,
                                                1 + len(body) // 3000, len(body), model)
            now = time.time()
            state.first_accept = state.first_accept or now
            state.last_accept = now
        location = (f"{self.server.url}/documentintelligence/documentModels/{model}/"
                    f"analyzeResults/{op_id}?api-version=2024-11-30")
        state.record("POST", 202, self.headers.get("x-ms-client-request-id"))
        return self._send(202, None, {"Operation-Location": location, "apim-request-id": op_id})

    def do_GET(self) -> None:
        state, config = self.server.state, self.server.state.config
        path = urlsplit(self.path).path
        if path == "/stats":
            return self._send(200, state.stats())
        if path == "/log":
            with state.lock:
                entries = list(state.log)
            return self._send(200, entries)
        if "/analyzeResults/" not in path:
            return self._error(404, "NotFound", f"no route {path}", "GET")
        if not self._authorised("GET"):
            return None
        if not state.polls.take():
            return self._error(429, "TooManyRequests", "Rate limit exceeded.", "GET",
                               config.retry_after_s)
        op_id = path.rsplit("/", 1)[-1]
        with state.lock:
            operation = state.operations.get(op_id)
        if operation is None:
            return self._error(404, "NotFound", "Resource not found.", "GET")
        if state.chance(config.malformed_rate):
            state.record("GET", 200, self.headers.get("x-ms-client-request-id"))
            return self._send(200, raw=b'{"status": "succ')
        state.record("GET", 200, self.headers.get("x-ms-client-request-id"))
        if time.monotonic() < operation.ready_at:
            return self._send(200, {"status": "running"},
                              {"Retry-After": str(config.retry_after_s)})
        if operation.outcome == "failed":
            return self._send(200, {"status": "failed", "error": {
                "code": "InvalidContent", "message": "The file is corrupted or format is "
                "unsupported."}})
        return self._send(200, {"status": "succeeded", "analyzeResult": {
            "apiVersion": "2024-11-30", "modelId": operation.model,
            "content": f"emulated text of {operation.size} bytes",
            "pages": [{"pageNumber": n + 1} for n in range(operation.pages)],
        }})


class EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # clients open many connections at once; 5 would reset them

    def __init__(self, config: EmulatorConfig, port: int = 0) -> None:
        self.state = EmulatorState(config)
        super().__init__(("127.0.0.1", port), Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # resets and client disconnects are expected here

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def start_in_thread(config: EmulatorConfig, port: int = 0) -> EmulatorServer:
    server = EmulatorServer(config, port)
    threading.Thread(target=server.serve_forever, name="shardrun-emulator", daemon=True).start()
    return server

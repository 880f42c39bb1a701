"""Processors for the benchmarks (imported by task subprocesses through PYTHONPATH)."""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
from typing import Any


def _record(item_id: str) -> None:
    path = os.environ.get("BENCH_CALL_LOG")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{item_id}\n".encode())
        finally:
            os.close(fd)


async def fixed(item: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(float(os.environ.get("BENCH_LATENCY", "0.01")))
    _record(item["id"])
    return {"id": item["id"]}


async def noisy(item: dict[str, Any]) -> dict[str, Any]:
    """Lognormal latency with the given mean (and sigma 0.5), deterministic per item."""
    mean = float(os.environ.get("BENCH_LATENCY", "0.05"))
    sigma = 0.5
    u = int(hashlib.sha256(item["id"].encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    z = math.sqrt(2) * _erfinv(2 * min(max(u, 1e-9), 1 - 1e-9) - 1)
    await asyncio.sleep(mean * math.exp(sigma * z - sigma**2 / 2))
    return {"id": item["id"]}


def _erfinv(y: float) -> float:
    # Winitzki's approximation is plenty for a benchmark's noise
    a = 0.147
    ln = math.log(1 - y * y)
    first = 2 / (math.pi * a) + ln / 2
    return math.copysign(math.sqrt(math.sqrt(first**2 - ln / a) - first), y)

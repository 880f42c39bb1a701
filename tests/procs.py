"""Processors for tests, configured through environment variables (subprocesses inherit them).

TEST_LATENCY   seconds each item takes (async sleep)
TEST_FAIL_IDS  comma-separated ids that raise
TEST_CALL_LOG  a file that gets "done <id>" appended once an item's work is complete
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any


def _record(item_id: str) -> None:
    path = os.environ.get("TEST_CALL_LOG")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"done {item_id}\n".encode())
        finally:
            os.close(fd)


def _fails(item_id: str) -> bool:
    return item_id in set(filter(None, os.environ.get("TEST_FAIL_IDS", "").split(",")))


async def process(item: dict[str, Any]) -> dict[str, Any]:
    latency = float(os.environ.get("TEST_LATENCY", "0"))
    if latency:
        await asyncio.sleep(latency)
    if _fails(item["id"]):
        raise RuntimeError(f"boom on {item['id']}")
    _record(item["id"])
    return {"id": item["id"], "length": len(item["id"])}


def process_sync(item: dict[str, Any]) -> dict[str, Any]:
    latency = float(os.environ.get("TEST_LATENCY", "0"))
    if latency:
        time.sleep(latency)
    if _fails(item["id"]):
        raise ValueError(f"sync boom on {item['id']}")
    _record(item["id"])
    return {"id": item["id"], "sync": True}


async def unserialisable(item: dict[str, Any]) -> dict[str, Any]:
    return {"id": item["id"], "value": object() if item["id"].endswith("3") else 1}


async def noop(item: dict[str, Any]) -> dict[str, Any]:
    return {}


async def payload(item: dict[str, Any]) -> dict[str, Any]:
    size = int(os.environ.get("TEST_PAYLOAD_BYTES", "1000"))
    return {"id": item["id"], "blob": os.urandom(size // 2).hex()}

"""The processor interface and the ``kind = "python"`` processor."""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .errors import UsageError
from .spec import ProcessorSpec


class ItemError(Exception):
    """An item failed after ``attempts`` tries; ``code`` is the service's error code if any."""

    def __init__(self, message: str, attempts: int = 1, code: str | None = None) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.code = code


@dataclass(frozen=True)
class ItemResult:
    """A result with the number of tries it took (when a processor retries internally)."""

    result: dict[str, Any]
    attempts: int = 1


class Processor(Protocol):
    """Turns one item (a dict with "id", "path" and manifest columns) into a JSON-able dict
    (or an ItemResult); raises ItemError (or anything) when the item fails."""

    async def start(self) -> None: ...

    async def process(self, item: dict[str, Any]) -> dict[str, Any] | ItemResult: ...

    async def close(self) -> None: ...


def load_callable(reference: str) -> Callable[..., Any]:
    module_name, _, attr = reference.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"[processor] function = {reference!r}: cannot load: {exc}") from None
    if not callable(target):
        raise UsageError(f"[processor] function = {reference!r}: not callable")
    return target  # type: ignore[no-any-return]


class PythonProcessor:
    """Calls ``fn(item)``; async functions are awaited, sync ones run in a thread pool."""

    def __init__(self, fn: Callable[..., Any], concurrency: int) -> None:
        self.fn = fn
        self.is_async = inspect.iscoroutinefunction(fn)
        self.pool: ThreadPoolExecutor | None = None
        self.concurrency = concurrency

    async def start(self) -> None:
        if not self.is_async:
            self.pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="shardrun-item")

    async def process(self, item: dict[str, Any]) -> dict[str, Any]:
        if self.is_async:
            result = await self.fn(item)
        else:
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(self.pool, self.fn, item)
        if not isinstance(result, dict):
            raise ItemError(f"processor returned {type(result).__name__}, not a dict")
        return result

    async def close(self) -> None:
        if self.pool is not None:
            # Items still running in threads cannot be interrupted; do not wait for them.
            self.pool.shutdown(wait=False, cancel_futures=True)


def make_processor(spec: ProcessorSpec, run_dir: Path | None = None,
                   expected_tasks: int = 1) -> Processor:
    """The processor of a spec; ``run_dir`` lets a rate-limited one count running tasks."""
    if spec.kind == "python":
        assert spec.function is not None  # checked when the spec was read
        return PythonProcessor(load_callable(spec.function), spec.concurrency)
    if spec.kind == "prebuilt-extraction":
        from .extraction import make_extraction_processor

        processor: Processor = make_extraction_processor(spec, run_dir, expected_tasks)
        return processor
    raise UsageError(f"[processor] kind = {spec.kind!r}: unknown")

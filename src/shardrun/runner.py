"""The async body of one array task: items in flight, checkpoints, graceful stop."""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import statistics
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .checkpoint import Checkpointer
from .processor import ItemError, ItemResult, Processor
from .schema import STATUS_ERROR, STATUS_OK

log = logging.getLogger("shardrun")

MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class RunSettings:
    split: str
    shard: int
    worker: str
    concurrency: int
    drain_s: float  # how long in-flight items may take to finish after a stop
    progress_every_s: float = 15.0


@dataclass
class RunStats:
    processed: int = 0
    ok: int = 0
    error: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    latencies: list[float] = field(default_factory=list)
    stop_reason: str | None = None
    rss_start_mib: float = field(default_factory=lambda: peak_rss_mib())
    stop_wants_requeue: bool = False

    def summary(self) -> dict[str, Any]:
        elapsed = (self.finished or time.monotonic()) - self.started
        lat = sorted(self.latencies)

        def pct(q: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(q * len(lat)))], 4) if lat else None

        return {
            "rss_start_mib": round(self.rss_start_mib, 1),
            "peak_rss_mib": round(peak_rss_mib(), 1),
            "items_processed": self.processed,
            "ok": self.ok,
            "error": self.error,
            "elapsed_s": round(elapsed, 3),
            "items_per_s": round(self.processed / elapsed, 4) if elapsed > 0 else None,
            "latency_mean_s": round(statistics.fmean(lat), 4) if lat else None,
            "latency_p50_s": pct(0.5),
            "latency_p95_s": pct(0.95),
        }


class StopSignal:
    """Set by signal handlers and the deadline timer; handlers do nothing else."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.reason: str | None = None
        self.wants_requeue = False

    def request(self, reason: str, requeue: bool = True) -> None:
        if not self.event.is_set():
            self.reason = reason
            self.wants_requeue = requeue
            self.event.set()


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _now() -> datetime:
    return datetime.now(UTC)


def _json_text(result: dict[str, Any]) -> str:
    return json.dumps(result, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


async def process_one(processor: Processor, item: dict[str, Any], prior_attempts: int,
                      settings: RunSettings) -> dict[str, Any]:
    """Run one item and make its row; an item's failure never escapes as an exception."""
    started = _now()
    status, error, result, attempts = STATUS_OK, None, None, prior_attempts + 1
    try:
        output = await processor.process(item)
        if isinstance(output, ItemResult):
            attempts = prior_attempts + max(1, output.attempts)
            output = output.result
    except ItemError as exc:
        # a try that never reached the service still counts, or it would be retried forever
        status, error = STATUS_ERROR, str(exc)
        attempts = prior_attempts + max(1, exc.attempts)
    except Exception as exc:  # the task must never die of one item
        status, error = STATUS_ERROR, f"{type(exc).__name__}: {exc}"
    else:
        try:
            result = _json_text(output)
        except (TypeError, ValueError) as exc:
            status, error = STATUS_ERROR, f"result not JSON-serialisable: {exc}"
    return {
        "item_id": item["id"], "split": settings.split, "shard": settings.shard,
        "status": status, "attempts": attempts,
        "error": None if error is None else error[:MAX_ERROR_CHARS],
        "result": result, "started_at": started, "finished_at": _now(),
        "worker": settings.worker,
    }


async def _every(period: float, action: Callable[[], None]) -> None:
    while True:
        await asyncio.sleep(period)
        action()


async def run_items(
    items: Iterable[dict[str, Any]],
    prior_attempts: dict[str, int],
    processor: Processor,
    checkpointer: Checkpointer,
    stop: StopSignal,
    settings: RunSettings,
    heartbeat: Callable[[], None] = lambda: None,
    progress: Callable[[RunStats], None] = lambda stats: None,
) -> RunStats:
    """Process ``items`` with ``concurrency`` in flight until done or stopped; always flush."""
    stats = RunStats()
    source: Iterator[dict[str, Any]] = iter(items)

    async def worker() -> None:
        while not stop.event.is_set():
            if not checkpointer.try_start_item():
                await checkpointer.start_item()
            item = None if stop.event.is_set() else next(source, None)
            if item is None:
                checkpointer.item_dropped()
                return
            began = time.monotonic()
            try:
                row = await process_one(processor, item, prior_attempts.get(item["id"], 0),
                                        settings)
            except asyncio.CancelledError:
                checkpointer.item_dropped()  # dropped unrecorded at the end of a drain
                raise
            stats.latencies.append(time.monotonic() - began)
            stats.processed += 1
            if row["status"] == STATUS_OK:
                stats.ok += 1
            else:
                stats.error += 1
            checkpointer.add(row)

    workers = [asyncio.create_task(worker()) for _ in range(settings.concurrency)]
    helpers = [
        asyncio.create_task(_every(min(1.0, checkpointer.every_seconds / 4),
                                   checkpointer.flush_if_due)),
        asyncio.create_task(_every(5.0, heartbeat)),
        asyncio.create_task(_every(settings.progress_every_s, lambda: progress(stats))),
    ]
    stop_wait = asyncio.create_task(stop.event.wait())
    try:
        running: set[asyncio.Task[Any]] = set(workers)
        while running and not stop.event.is_set():
            done, running = await asyncio.wait(
                running | {stop_wait}, return_when=asyncio.FIRST_COMPLETED
            )
            running.discard(stop_wait)
            for task in done - {stop_wait}:
                task.result()  # a worker fails only when writing a part fails: stop the task
        if stop.event.is_set():
            stats.stop_reason = stop.reason
            stats.stop_wants_requeue = stop.wants_requeue
        if running:
            log.info("%s: no new items; draining %d in flight for up to %.0f s",
                     stop.reason, len(running), settings.drain_s)
            _, late = await asyncio.wait(running, timeout=settings.drain_s)
            if late:
                log.info("dropping %d unfinished item(s) unrecorded", len(late))
    finally:
        await _cancel([*workers, *helpers, stop_wait])
        stats.finished = time.monotonic()
    await checkpointer.flush()
    return stats


async def _cancel(tasks: list[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, Exception) and not isinstance(result, asyncio.CancelledError):
            raise result

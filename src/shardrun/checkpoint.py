"""Buffering result rows and writing them as parts every N items or T seconds.

Parts are written in a thread while items keep running, but never at the price of the loss
bound: an item may only start while the unsaved work (rows buffered + rows being written +
items in flight) is below ``every_items + concurrency``, so a kill at any moment loses at most
that many items. Each part holds at most ``every_items`` rows; one write runs at a time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol


class Writer(Protocol):
    def write(self, rows: list[dict[str, Any]]) -> object: ...


class Checkpointer:
    def __init__(self, writer: Writer, every_items: int, every_seconds: float,
                 concurrency: int = 1, clock: Callable[[], float] = time.monotonic) -> None:
        self.writer = writer
        self.every_items = every_items
        self.every_seconds = every_seconds
        self.limit = every_items + concurrency
        self.clock = clock
        self.rows: list[dict[str, Any]] = []
        self.oldest: float | None = None  # when the oldest unsaved row arrived
        self.writing = 0  # rows in the write in flight
        self.in_flight = 0  # items started and not yet added
        self._write: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    @property
    def unsaved(self) -> int:
        return len(self.rows) + self.writing + self.in_flight

    def _check(self) -> None:
        if self._write is not None and self._write.done() and not self._write.cancelled():
            self._write.result()  # a failed write (disk full, lease lost) stops the task

    def try_start_item(self) -> bool:
        """Count one more item in flight if the loss bound allows it now."""
        self._check()
        if self.unsaved < self.limit:
            self.in_flight += 1
            return True
        return False

    async def start_item(self) -> None:
        """Wait until one more item may be in flight without breaking the loss bound."""
        while not self.try_start_item():
            self._changed.clear()
            await self._changed.wait()

    def item_dropped(self) -> None:
        self.in_flight -= 1

    def add(self, row: dict[str, Any]) -> None:
        self.in_flight -= 1
        if not self.rows:
            self.oldest = self.clock()
        self.rows.append(row)
        if len(self.rows) >= self.every_items:
            self._kick(force=False)

    def due(self) -> bool:
        return self.oldest is not None and self.clock() - self.oldest >= self.every_seconds

    def flush_if_due(self) -> None:
        if self.due():
            self._kick(force=True)

    def _kick(self, force: bool) -> None:
        self._check()
        if self._write is None or self._write.done():
            self._write = asyncio.create_task(self._write_parts(force))

    async def _write_parts(self, force: bool) -> None:
        while len(self.rows) >= self.every_items or (force and self.rows):
            batch = self.rows[:self.every_items]
            del self.rows[:self.every_items]
            self.oldest = self.clock() if self.rows else None
            self.writing = len(batch)
            try:
                await asyncio.to_thread(self.writer.write, batch)
            finally:
                self.writing = 0
                self._changed.set()

    async def flush(self) -> None:
        """Write everything buffered (at the end, or after a stop) and wait for it."""
        while True:
            if self._write is not None:
                await self._write  # raises if the write failed
                self._write = None
            if not self.rows:
                return
            self._kick(force=True)

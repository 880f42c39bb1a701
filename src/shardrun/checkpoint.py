"""Buffering result rows and flushing them as parts every N items or T seconds."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .parts import PartWriter


class Checkpointer:
    """Holds at most one interval of rows; a flush writes them as one atomic part.

    The flush is synchronous on purpose: while it runs no other result is accepted, so a kill
    at any moment loses at most ``every_items`` buffered rows plus the items in flight.
    """

    def __init__(self, writer: PartWriter, every_items: int, every_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.writer = writer
        self.every_items = every_items
        self.every_seconds = every_seconds
        self.clock = clock
        self.rows: list[dict[str, Any]] = []
        self.oldest: float | None = None  # when the oldest unflushed row arrived

    def add(self, row: dict[str, Any]) -> None:
        if not self.rows:
            self.oldest = self.clock()
        self.rows.append(row)
        if len(self.rows) >= self.every_items:
            self.flush()

    def due(self) -> bool:
        return self.oldest is not None and self.clock() - self.oldest >= self.every_seconds

    def flush(self) -> None:
        if self.rows:
            self.writer.write(self.rows)
        self.rows = []
        self.oldest = None

"""Tables and progress for people (rich), one-line logs for files."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from .progress import format_eta
from .status import ShardStatus, SplitStatus

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _rate(value: float | None) -> str:
    return f"{value:.2f}/s" if value else "-"


def status_tables(splits: list[SplitStatus], shards: list[ShardStatus],
                  show_shards: bool = True) -> list[Table]:
    summary = Table(title="splits")
    for column in ("split", "items", "done", "errors", "shards done", "eta"):
        summary.add_column(column, justify="right" if column != "split" else "left")
    for s in splits:
        summary.add_row(s.split, str(s.items), str(s.done), str(s.errors),
                        f"{s.complete_shards}/{s.shards}",
                        "-" if s.eta_s is None else format_eta(s.eta_s))
    tables = [summary]
    if show_shards:
        detail = Table(title="shards")
        for column in ("split", "shard", "done/total", "errors", "state", "throughput",
                       "eta", "restarts"):
            detail.add_column(column, justify="left" if column in ("split", "state") else "right")
        for r in shards:
            detail.add_row(r.split, str(r.shard), f"{r.done}/{r.items}", str(r.errors), r.state,
                           _rate(r.items_per_s), "-" if r.eta_s is None else format_eta(r.eta_s),
                           "-" if r.restarts is None else str(r.restarts))
        tables.append(detail)
    return tables


class RunProgress:
    """A progress bar per split on a terminal; a log line every ``log_every_s`` otherwise."""

    def __init__(self, totals: dict[str, int], count_done: Callable[[], dict[str, int]],
                 refresh_s: float = 2.0, log_every_s: float = 30.0) -> None:
        self.totals = totals
        self.count_done = count_done
        self.refresh_s = refresh_s if sys.stderr.isatty() else log_every_s
        self.last = 0.0
        self.bar: Progress | None = None
        self.tasks: dict[str, int] = {}

    def __enter__(self) -> RunProgress:
        if sys.stderr.isatty():
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                MofNCompleteColumn(), TimeRemainingColumn(), console=err)
            self.bar.start()
            self.tasks = {s: self.bar.add_task(s, total=n) for s, n in self.totals.items()}
        return self

    def tick(self) -> None:
        now = time.monotonic()
        if now - self.last < self.refresh_s:
            return
        self.last = now
        done = self.count_done()
        if self.bar is not None:
            for split, task_id in self.tasks.items():
                self.bar.update(task_id, completed=done.get(split, 0))  # type: ignore[arg-type]
        else:
            line = ", ".join(f"{s} {done.get(s, 0)}/{n}" for s, n in self.totals.items())
            err.print(f"{time.strftime('%H:%M:%S')} progress: {line}")

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.last = 0.0
            self.tick()
            self.bar.stop()

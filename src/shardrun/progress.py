"""Progress lines for logs (one line, periodically) when not on a terminal."""

from __future__ import annotations

import logging

from .runner import RunStats

log = logging.getLogger("shardrun")


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def log_progress(split: str, shard: int, stats: RunStats, total: int) -> None:
    summary = stats.summary()
    rate = summary["items_per_s"] or 0.0
    left = total - stats.processed
    eta = left / rate if rate > 0 else None
    log.info("progress %s/%05d: %d/%d done (%d ok, %d error), %.2f items/s, eta %s",
             split, shard, stats.processed, total, stats.ok, stats.error, rate, format_eta(eta))

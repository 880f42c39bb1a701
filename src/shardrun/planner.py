"""Shard sizing and item → shard assignment (pure functions, no I/O)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Sizing:
    time_s: int
    target_fraction: float
    concurrency: int
    max_concurrent: int
    seconds_per_item: float
    rate_limit_per_s: float | None


def per_task_throughput(sizing: Sizing) -> float:
    """Items/s one array task can do: bounded by its in-flight requests and its rate share."""
    by_latency = sizing.concurrency / sizing.seconds_per_item
    if sizing.rate_limit_per_s is None:
        return by_latency
    return min(by_latency, sizing.rate_limit_per_s / sizing.max_concurrent)


def max_items_per_shard(time_s: int, target_fraction: float, throughput: float) -> int:
    """Largest shard that needs at most ``target_fraction`` of the wall clock."""
    return max(1, math.floor(target_fraction * time_s * throughput))


def shard_bounds(n_items: int, cap: int) -> list[tuple[int, int]]:
    """Balanced contiguous [start, stop) ranges of at most ``cap`` items (sizes differ by <= 1)."""
    if n_items == 0:
        return []
    n_shards = math.ceil(n_items / cap)
    base, extra = divmod(n_items, n_shards)
    bounds, start = [], 0
    for k in range(n_shards):
        stop = start + base + (1 if k < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def measured_throughput(items_per_s: list[float]) -> float | None:
    """Median per-task throughput of earlier shards, or None without measurements."""
    usable = [v for v in items_per_s if v > 0]
    return statistics.median(usable) if usable else None


def est_hours(items: int, throughput: float) -> float:
    return items / throughput / 3600.0

"""What state a run is in, per split and shard (read-only: never moves or writes a file)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import layout
from .lease import read_live_lease
from .parts import distinct, scan_shard
from .planfile import Plan


@dataclass
class ShardStatus:
    split: str
    shard: int
    items: int
    done: int  # ok
    errors: int  # latest word is error
    state: str
    items_per_s: float | None
    eta_s: float | None
    restarts: int | None


@dataclass
class SplitStatus:
    split: str
    items: int
    shards: int
    done: int
    errors: int
    complete_shards: int
    eta_s: float | None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


def shard_status(run_dir: Path, split: str, shard: int, items: int,
                 scheduler_state: str | None = None) -> ShardStatus:
    path = layout.shard_dir(run_dir, split, shard)
    success = _read_json(layout.success_path(path))
    if success is not None:
        stats = success.get("stats", {})
        state = "done" if success.get("error", 0) == 0 else "done-with-errors"
        return ShardStatus(split, shard, items, int(success["ok"]), int(success["error"]),
                           state, stats.get("items_per_s"), 0.0, success.get("restart_count"))
    scan = scan_shard(path, quarantine_bad=False)
    done, errors = distinct(scan.ok_ids), len(scan.error_attempts)
    lease_info = read_live_lease(layout.lease_path(path))
    rate = eta = None
    restarts = None
    if lease_info is not None:
        state = "running"
        restarts = lease_info.get("restart")
        elapsed = time.time() - float(lease_info.get("acquired_at", time.time()))
        rate_rows = scan.rows  # rows include earlier runs; a fair lower bound on the pace
        if elapsed > 1 and rate_rows:
            rate = rate_rows / elapsed
            eta = (items - done - errors) / rate if rate else None
    elif scan.parts:
        state = "partial"
    else:
        state = "not-started"
    if scheduler_state is not None and state != "running":
        state = scheduler_state
    return ShardStatus(split, shard, items, done, errors, state, rate, eta, restarts)


def run_status(run_dir: Path, plan: Plan,
               scheduler_states: Mapping[tuple[str, int], str] | None = None,
               ) -> tuple[list[SplitStatus], list[ShardStatus]]:
    states = scheduler_states or {}
    splits, shards = [], []
    for name, split in plan.splits.items():
        rows = [shard_status(run_dir, name, k, b - a, states.get((name, k)))
                for k, (a, b) in enumerate(split.shards)]
        shards.extend(rows)
        etas = [r.eta_s for r in rows if r.eta_s is not None and r.state == "running"]
        splits.append(SplitStatus(
            split=name, items=split.items, shards=len(rows),
            done=sum(r.done for r in rows), errors=sum(r.errors for r in rows),
            complete_shards=sum(r.state.startswith("done") for r in rows),
            eta_s=max(etas) if etas else None,
        ))
    return splits, shards


def status_json(splits: list[SplitStatus], shards: list[ShardStatus]) -> dict[str, Any]:
    return {"splits": [asdict(s) for s in splits], "shards": [asdict(s) for s in shards]}


def is_complete(splits: list[SplitStatus]) -> bool:
    return all(s.complete_shards == s.shards for s in splits)


def has_failures(splits: list[SplitStatus]) -> bool:
    return any(s.errors for s in splits) or not is_complete(splits)

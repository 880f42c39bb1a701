"""A per-shard event log (events/<split>/<shard>.jsonl) for reports: runs, stops, parts.

Best effort by design: an event that cannot be written is skipped, never fatal; the run's
correctness rests on the parts and _SUCCESS.json, not on this log.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


def events_path(run_dir: Path, split: str, shard: int) -> Path:
    return run_dir / "events" / split / f"{shard:05d}.jsonl"


class EventLog:
    def __init__(self, path: Path, **common: Any) -> None:
        self.path = path
        self.common = common

    def emit(self, kind: str, **fields: Any) -> None:
        line = json.dumps({"t": round(time.time(), 3), "kind": kind, **self.common, **fields})
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line + "\n")
        except OSError:
            pass


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    events = []
    for path in sorted((run_dir / "events").glob("*/*.jsonl")):
        split, shard = path.parent.name, int(path.stem)
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                events.append({"split": split, "shard": shard, **json.loads(line)})
            except ValueError:
                continue  # a torn last line after a kill
    return sorted(events, key=lambda e: e["t"])

"""submissions.jsonl: one line per array submitted, whatever the backend."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from . import layout


def append_submission(run_dir: Path, record: dict[str, Any]) -> None:
    line = json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **record})
    path = layout.submissions_path(run_dir)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_submissions(run_dir: Path) -> list[dict[str, Any]]:
    path = layout.submissions_path(run_dir)
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue  # a torn last line after a crash
    return records


def array_spec(indices: list[int], max_concurrent: int) -> str:
    """SLURM --array value: ranges where dense ("0-9"), commas otherwise, then "%throttle"."""
    parts: list[str] = []
    ordered = sorted(set(indices))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return f"{','.join(parts)}%{max_concurrent}"

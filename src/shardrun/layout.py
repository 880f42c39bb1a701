"""Names in the run directory (read by outside tools and tests: keep them stable)."""

from __future__ import annotations

import re
from pathlib import Path

PART_RE = re.compile(r"^part-(\d{6})\.parquet$")


def plan_path(run_dir: Path) -> Path:
    return run_dir / "plan.json"


def split_dir(run_dir: Path, split: str) -> Path:
    return run_dir / "shards" / split


def shard_dir(run_dir: Path, split: str, shard: int) -> Path:
    return split_dir(run_dir, split) / f"{shard:05d}"


def part_name(seq: int) -> str:
    return f"part-{seq:06d}.parquet"


def success_path(shard_path: Path) -> Path:
    return shard_path / "_SUCCESS.json"


def lease_path(shard_path: Path) -> Path:
    return shard_path / "_LEASE.json"


def quarantine_dir(shard_path: Path) -> Path:
    return shard_path / "quarantine"


def log_dir(run_dir: Path, split: str) -> Path:
    return run_dir / "logs" / split


def merged_path(run_dir: Path, split: str) -> Path:
    return run_dir / "merged" / f"{split}.parquet"


def merged_manifest_path(run_dir: Path, split: str) -> Path:
    return run_dir / "merged" / f"{split}.manifest.json"


def submissions_path(run_dir: Path) -> Path:
    return run_dir / "submissions.jsonl"


def superseded_dir(run_dir: Path) -> Path:
    return run_dir / "superseded"


def list_parts(shard_path: Path) -> list[tuple[int, Path]]:
    """Visible parts of a shard, in sequence order (temp files are never listed)."""
    if not shard_path.is_dir():
        return []
    found = []
    for entry in shard_path.iterdir():
        if match := PART_RE.match(entry.name):
            found.append((int(match.group(1)), entry))
    return sorted(found)

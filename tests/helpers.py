"""Shared helpers for reading what a run wrote."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from shardrun import layout
from shardrun.schema import ROW_SCHEMA


def all_parts(run_dir: Path, split: str) -> list[Path]:
    return sorted((run_dir / "shards" / split).glob("*/part-*.parquet"))


def read_rows(run_dir: Path, split: str) -> pa.Table:
    parts = all_parts(run_dir, split)
    if not parts:
        return ROW_SCHEMA.empty_table()
    return pa.concat_tables([pq.read_table(p, schema=ROW_SCHEMA) for p in parts])


def ok_ids(run_dir: Path, split: str) -> set[str]:
    rows = read_rows(run_dir, split).to_pylist()
    return {r["item_id"] for r in rows if r["status"] == "ok"}


def call_log(path: Path) -> Counter[str]:
    if not path.exists():
        return Counter()
    return Counter(line.split(" ", 1)[1] for line in path.read_text().splitlines() if line)


def merged_ids(run_dir: Path, split: str) -> list[str]:
    return pq.read_table(layout.merged_path(run_dir, split)).column("item_id").to_pylist()


def planned_ids(job_root: Path, split: str) -> list[str]:
    return (job_root / "data" / f"{split}.txt").read_text().split()

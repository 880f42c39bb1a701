"""Checkpoint parts of one shard: writing the next part, scanning parts to resume."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from . import layout
from .atomic import atomic_write_table, fsync_dir
from .schema import ROW_SCHEMA, STATUS_ERROR, STATUS_OK

log = logging.getLogger("shardrun")

SCAN_COLUMNS = ["item_id", "status", "attempts"]


def distinct(ids: pa.Array) -> int:
    return int(pc.count_distinct(ids).as_py()) if len(ids) else 0


@dataclass
class ShardScan:
    """What the parts of a shard say: which items are ok, attempts of the ones in error."""

    ok_ids: pa.Array = field(default_factory=lambda: pa.array([], pa.string()))  # may repeat
    error_attempts: dict[str, int] = field(default_factory=dict)  # not-ok items only
    parts: int = 0
    rows: int = 0
    next_seq: int = 0
    quarantined: list[Path] = field(default_factory=list)


def quarantine(shard_path: Path, part: Path, reason: str) -> Path:
    target_dir = layout.quarantine_dir(shard_path)
    target_dir.mkdir(exist_ok=True)
    target = target_dir / part.name
    os.replace(part, target)
    fsync_dir(shard_path)
    log.warning("quarantined unreadable part %s -> %s (%s); its items will be redone",
                part.name, target, reason)
    return target


def _read_columns(paths: Sequence[Path], columns: list[str]) -> pa.Table:
    # One multi-threaded dataset read is much faster than thousands of small reads.
    dataset = ds.dataset([str(p) for p in paths], format="parquet", schema=ROW_SCHEMA)
    return dataset.to_table(columns=columns, fragment_readahead=64)


def read_parts_checked(
    shard_path: Path, columns: list[str], quarantine_bad: bool = True
) -> tuple[pa.Table, list[tuple[int, Path]], list[Path]]:
    """Read ``columns`` of all readable parts; unreadable ones are quarantined (or skipped)."""
    parts = layout.list_parts(shard_path)
    if not parts:
        return ROW_SCHEMA.empty_table().select(columns), [], []
    try:
        return _read_columns([p for _, p in parts], columns), parts, []
    except (pa.ArrowException, OSError):
        pass  # find the bad part(s) one by one
    good, bad = [], []
    for seq, part in parts:
        try:
            pq.read_metadata(part)
            pq.read_table(part, columns=columns, schema=ROW_SCHEMA)
            good.append((seq, part))
        except (pa.ArrowException, OSError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
            bad.append(quarantine(shard_path, part, reason) if quarantine_bad else part)
    table = _read_columns([p for _, p in good], columns) if good else (
        ROW_SCHEMA.empty_table().select(columns)
    )
    return table, parts, bad


def scan_shard(shard_path: Path, quarantine_bad: bool = True) -> ShardScan:
    table, parts, bad = read_parts_checked(shard_path, SCAN_COLUMNS, quarantine_bad)
    next_seq = (parts[-1][0] + 1) if parts else 0
    is_ok = pc.equal(table.column("status"), STATUS_OK)
    # Not made unique: is_in() takes repeats as they are, and unique() costs 10 % of a scan.
    ok_ids = pc.filter(table.column("item_id"), is_ok).combine_chunks()
    errors = table.filter(pc.equal(table.column("status"), STATUS_ERROR))
    errors = errors.filter(pc.invert(pc.is_in(errors.column("item_id"), value_set=ok_ids)))
    attempts: dict[str, int] = {}
    if errors.num_rows:
        grouped = errors.group_by("item_id").aggregate([("attempts", "max")])
        attempts = dict(zip(grouped.column("item_id").to_pylist(),
                            grouped.column("attempts_max").to_pylist(), strict=True))
    return ShardScan(ok_ids=ok_ids, error_attempts=attempts, parts=len(parts) - len(bad),
                     rows=table.num_rows, next_seq=next_seq, quarantined=bad)


class PartWriter:
    """Writes rows as numbered parts, each atomically; checks ownership before each write."""

    def __init__(self, shard_path: Path, next_seq: int,
                 still_owner: Callable[[], bool] | None = None,
                 on_written: Callable[[int, int], None] | None = None) -> None:
        self.shard_path = shard_path
        self.next_seq = next_seq
        self.still_owner = still_owner
        self.on_written = on_written
        self.parts_written = 0
        self.rows_written = 0

    def write(self, rows: list[dict[str, Any]]) -> Path | None:
        if not rows:
            return None
        if self.still_owner is not None and not self.still_owner():
            raise LeaseLostError(f"{self.shard_path}: lease lost; not writing {len(rows)} rows")
        table = pa.Table.from_pylist(rows, schema=ROW_SCHEMA)
        path = self.shard_path / layout.part_name(self.next_seq)
        atomic_write_table(path, table, fault_point="part-before-rename")
        if self.on_written is not None:
            self.on_written(self.next_seq, len(rows))
        self.next_seq += 1
        self.parts_written += 1
        self.rows_written += len(rows)
        return path


class LeaseLostError(RuntimeError):
    """Another runner took this shard over; stop writing at once."""

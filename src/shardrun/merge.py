"""Merging shard parts into one Parquet file per split, each planned item exactly once.

Streams shard by shard: memory follows the largest shard, not the split. Within a shard the
latest ``ok`` row of an item wins, else its latest ``error`` row.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import layout
from .atomic import atomic_write_json, fsync_dir
from .manifest import planned_id_slices
from .parts import read_parts_checked
from .planfile import Plan, SplitPlan
from .schema import ROW_SCHEMA, STATUS_OK

MISSING_SHOWN = 100


@dataclass
class MergeReport:
    split: str
    planned: int
    written: int = 0
    ok: int = 0
    error: int = 0
    duplicates_dropped: int = 0
    unplanned_rows: int = 0
    missing: list[str] = field(default_factory=list)  # first MISSING_SHOWN
    missing_count: int = 0
    path: Path | None = None
    sha256: str | None = None
    refused: bool = False


def latest_per_item(table: pa.Table) -> pa.Table:
    """One row per item_id: the latest ok row, else the latest row (rows in write order)."""
    n = table.num_rows
    if n == 0 or pc.count_distinct(table.column("item_id")).as_py() == n:
        return table  # the common case: every item written once
    is_ok = pc.cast(pc.equal(table.column("status"), STATUS_OK), pa.int64())
    order = pa.array(range(n), pa.int64())
    rank = pc.add(pc.multiply(is_ok, n), order)  # ok rows outrank all error rows
    keyed = pa.table({"item_id": table.column("item_id"), "_rank": rank})
    best = keyed.group_by("item_id").aggregate([("_rank", "max")]).column("_rank_max")
    return table.take(pc.subtract(best, pc.multiply(pc.divide(best, n), n)))


def _shard_rows(shard_path: Path, ids: pa.Array, report: MergeReport) -> pa.Table:
    table, _, _ = read_parts_checked(shard_path, ROW_SCHEMA.names)
    latest = latest_per_item(table)
    report.duplicates_dropped += table.num_rows - latest.num_rows
    present = pc.is_in(ids, value_set=latest.column("item_id"))
    if not pc.all(present).as_py():
        lost = pc.filter(ids, pc.invert(present))
        report.missing_count += len(lost)
        room = MISSING_SHOWN - len(report.missing)
        report.missing.extend(lost.slice(0, max(0, room)).to_pylist())
    planned = pc.is_in(latest.column("item_id"), value_set=ids)
    if not pc.all(planned).as_py():  # rows of items this shard does not own: leave them out
        report.unplanned_rows += latest.num_rows - int(pc.sum(planned).as_py() or 0)
        latest = latest.filter(planned)
    return latest  # in the order the shard wrote them


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def merge_split(run_dir: Path, split: SplitPlan, allow_partial: bool = False) -> MergeReport:
    planned = planned_id_slices(split.manifest, split.name, split.manifest_sha256, split.shards)
    report = MergeReport(split=split.name, planned=split.items)
    target = layout.merged_path(run_dir, split.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        with pq.ParquetWriter(tmp, ROW_SCHEMA, compression="zstd") as writer:
            for shard, ids in enumerate(planned):
                rows = _shard_rows(layout.shard_dir(run_dir, split.name, shard), ids, report)
                if rows.num_rows:
                    writer.write_table(rows)
                report.written += rows.num_rows
                report.ok += int(pc.sum(pc.equal(rows.column("status"), STATUS_OK)).as_py() or 0)
        report.error = report.written - report.ok
        if report.missing_count and not allow_partial:
            report.refused = True
            return report
        with tmp.open("rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        fsync_dir(target.parent)
    finally:
        tmp.unlink(missing_ok=True)
    report.path, report.sha256 = target, _sha256(target)
    atomic_write_json(layout.merged_manifest_path(run_dir, split.name), manifest_record(report))
    return report


def manifest_record(report: MergeReport) -> dict[str, Any]:
    return {
        "split": report.split, "planned": report.planned, "rows": report.written,
        "ok": report.ok, "error": report.error, "missing_count": report.missing_count,
        "missing": report.missing, "duplicates_dropped": report.duplicates_dropped,
        "unplanned_rows": report.unplanned_rows, "partial": report.missing_count > 0,
        "file": report.path.name if report.path else None, "sha256": report.sha256,
        "created_at": datetime.now(UTC).isoformat(),
    }


def merge(run_dir: Path, plan: Plan, splits: list[str] | None,
          allow_partial: bool = False) -> list[MergeReport]:
    chosen = splits or list(plan.splits)
    return [merge_split(run_dir, plan.split(name), allow_partial) for name in chosen]

"""Merge writes each planned item exactly once, latest ok wins, refuses and names the missing."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq

from helpers import merged_ids, planned_ids
from shardrun import layout
from shardrun.atomic import atomic_write_table
from shardrun.cli import main
from shardrun.merge import latest_per_item
from shardrun.planfile import ensure_plan
from shardrun.schema import ROW_SCHEMA
from shardrun.spec import load_spec
from shardrun.task import run_task
from shardrun.taskenv import TaskEnv

MANUAL = TaskEnv("manual", None, None, None, 0, None)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _row(item: str, status: str, attempts: int = 1, result: str | None = "{}") -> dict:
    return {"item_id": item, "split": "s", "shard": 0, "status": status, "attempts": attempts,
            "error": None if status == "ok" else "e", "result": result if status == "ok" else None,
            "started_at": T0, "finished_at": T0, "worker": "w"}


def test_latest_ok_wins_over_error_and_later_ok_over_earlier() -> None:
    rows = [_row("a", "error"), _row("a", "ok", 2, '"first"'), _row("b", "ok", 1, '"b1"'),
            _row("a", "error", 3), _row("b", "ok", 1, '"b2"'), _row("c", "error"),
            _row("c", "error", 2)]
    best = {r["item_id"]: r for r in latest_per_item(
        pa.Table.from_pylist(rows, schema=ROW_SCHEMA)).to_pylist()}
    assert best["a"]["status"] == "ok" and best["a"]["result"] == '"first"'
    assert best["b"]["result"] == '"b2"'
    assert best["c"]["status"] == "error" and best["c"]["attempts"] == 2
    assert len(best) == 3


def _planned_job(make_job, splits, sections=None):
    job = make_job(splits, sections or {"planning": {"est_seconds_per_item": 12.0}})
    spec = load_spec(job)
    ensure_plan(spec)  # 100 items per shard
    return job, spec


def test_merge_exactly_once_with_duplicates_in_parts(make_job) -> None:
    job, spec = _planned_job(make_job, {"train": 250})
    for shard in range(3):
        assert run_task(spec, "train", shard, MANUAL).exit_code == 0
    # a duplicate part (e.g. a row re-done after a race) must not duplicate the item
    shard0 = layout.shard_dir(spec.run_dir, "train", 0)
    copy = pq.read_table(shard0 / "part-000000.parquet")
    atomic_write_table(shard0 / "part-000099.parquet", copy)
    assert main(["merge", str(job)]) == 0
    ids = merged_ids(spec.run_dir, "train")
    assert len(ids) == 250 and sorted(ids) == sorted(planned_ids(job.parent, "train"))
    manifest = json.loads(layout.merged_manifest_path(spec.run_dir, "train").read_text())
    assert manifest["rows"] == 250 and manifest["missing_count"] == 0
    assert manifest["duplicates_dropped"] == copy.num_rows
    digest = hashlib.sha256(layout.merged_path(spec.run_dir, "train").read_bytes()).hexdigest()
    assert manifest["sha256"] == digest
    assert pq.read_schema(layout.merged_path(spec.run_dir, "train")).equals(ROW_SCHEMA)


def test_merge_refuses_a_missing_shard_and_names_the_items(make_job, capsys) -> None:
    job, spec = _planned_job(make_job, {"train": 250})
    run_task(spec, "train", 0, MANUAL)
    run_task(spec, "train", 2, MANUAL)
    assert main(["merge", str(job)]) == 1
    err = capsys.readouterr().err
    assert "refused: 83 of 250 planned item(s) missing" in err  # shard 1 holds items 84..166
    assert "train-item-00084" in err
    assert not layout.merged_path(spec.run_dir, "train").exists()
    assert not list((spec.run_dir / "merged").glob(".*tmp*"))


def test_allow_partial_writes_and_lists_the_missing(make_job) -> None:
    job, spec = _planned_job(make_job, {"train": 250})
    run_task(spec, "train", 0, MANUAL)
    assert main(["merge", str(job), "--allow-partial"]) == 1
    manifest = json.loads(layout.merged_manifest_path(spec.run_dir, "train").read_text())
    assert manifest["partial"] is True and manifest["missing_count"] == 166
    assert len(manifest["missing"]) == 100 and manifest["missing"][0] == "train-item-00084"
    assert len(merged_ids(spec.run_dir, "train")) == 84


def test_merge_of_one_split_and_unknown_split(make_job, capsys) -> None:
    job, spec = _planned_job(make_job, {"train": 5, "val": 5})
    run_task(spec, "val", 0, MANUAL)
    assert main(["merge", str(job), "--split", "val"]) == 0
    assert not layout.merged_path(spec.run_dir, "train").exists()
    assert main(["merge", str(job), "--split", "nope"]) == 2
    assert "no split 'nope'" in capsys.readouterr().err


def test_error_items_are_merged_once_and_exit_1(make_job, monkeypatch) -> None:
    monkeypatch.setenv("TEST_FAIL_IDS", "val-item-00002")
    job, spec = _planned_job(make_job, {"val": 5})
    run_task(spec, "val", 0, MANUAL)
    assert main(["merge", str(job)]) == 1
    rows = pq.read_table(layout.merged_path(spec.run_dir, "val")).to_pylist()
    assert {r["item_id"]: r["status"] for r in rows} == {
        f"val-item-{i:05d}": "error" if i == 2 else "ok" for i in range(5)}

"""The task runner in-process: checkpoints, resume, errors, memory bound (guarantees 1-4, 10)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading

import pyarrow.parquet as pq
import pytest

from helpers import all_parts, call_log, read_rows
from shardrun import layout
from shardrun.checkpoint import Checkpointer
from shardrun.planfile import ensure_plan
from shardrun.spec import load_spec
from shardrun.task import run_task
from shardrun.taskenv import TaskEnv

MANUAL = TaskEnv("manual", None, None, None, 0, None)


def _plan(job):
    spec = load_spec(job)
    ensure_plan(spec)
    return spec


def test_404_items_checkpoint_at_least_4_times(make_job) -> None:
    spec = _plan(make_job({"val": 404}))
    outcome = run_task(spec, "val", 0, MANUAL)
    assert outcome.exit_code == 0 and outcome.state == "complete"
    parts = all_parts(spec.run_dir, "val")
    assert len(parts) >= 4
    sizes = [pq.read_metadata(p).num_rows for p in parts]
    assert sizes == [100, 100, 100, 100, 4]
    rows = read_rows(spec.run_dir, "val")
    assert sorted(rows.column("item_id").to_pylist()) == [f"val-item-{i:05d}" for i in range(404)]
    success = json.loads(layout.success_path(parts[0].parent).read_text())
    assert success["ok"] == 404 and success["error"] == 0
    assert success["stats"]["items_processed"] == 404 and success["stats"]["items_per_s"] > 0


def test_parts_have_the_design_schema(make_job) -> None:
    spec = _plan(make_job({"val": 3}))
    run_task(spec, "val", 0, MANUAL)
    row = read_rows(spec.run_dir, "val").to_pylist()[0]
    assert row["status"] == "ok" and row["attempts"] == 1 and row["error"] is None
    assert json.loads(row["result"]) == {"id": row["item_id"], "length": len(row["item_id"])}
    assert row["shard"] == 0 and row["split"] == "val" and row["worker"].startswith("manual:")
    schema = pq.read_schema(all_parts(spec.run_dir, "val")[0])
    assert str(schema.field("finished_at").type) == "timestamp[us, tz=UTC]"
    assert schema.field("item_id").nullable is False


def test_checkpoint_by_time_when_items_are_slow(make_job, monkeypatch) -> None:
    monkeypatch.setenv("TEST_LATENCY", "0.05")
    spec = _plan(make_job({"val": 30}, {"processor": {"concurrency": 1},
                                       "checkpoint": {"every_items": 1000, "every_seconds": 0.3}}))
    run_task(spec, "val", 0, MANUAL)
    # 30 items x 0.05 s = 1.5 s of work and a 0.3 s interval: several parts, not one at the end
    assert len(all_parts(spec.run_dir, "val")) >= 3


def test_checkpointer_flushes_on_count_or_age() -> None:
    now = [0.0]
    written: list[int] = []

    class Writer:
        def write(self, rows):
            written.append(len(rows))

    async def scenario() -> None:
        cp = Checkpointer(Writer(), every_items=3, every_seconds=10, concurrency=2,
                          clock=lambda: now[0])
        for _ in range(7):
            await cp.start_item()
            cp.add({})
            await asyncio.sleep(0.01)  # let the write thread run
        assert written == [3, 3] and len(cp.rows) == 1
        now[0] = 9.9
        assert not cp.due()
        now[0] = 10.0
        assert cp.due()
        cp.flush_if_due()
        await cp.flush()
        assert written == [3, 3, 1] and not cp.due()

    asyncio.run(scenario())


def test_checkpointer_never_lets_unsaved_work_pass_the_bound() -> None:
    """every_items + concurrency is the most a kill can lose: no item starts beyond it,
    even while a slow part write is in progress."""
    import time as _time

    class SlowWriter:
        def write(self, rows):
            _time.sleep(0.05)

    async def scenario() -> int:
        cp = Checkpointer(SlowWriter(), every_items=10, every_seconds=60, concurrency=4)
        worst = 0

        async def worker() -> None:
            nonlocal worst
            for _ in range(30):
                await cp.start_item()
                worst = max(worst, cp.unsaved)
                await asyncio.sleep(0.001)
                cp.add({})

        await asyncio.gather(*(worker() for _ in range(4)))
        await cp.flush()
        return worst

    assert asyncio.run(scenario()) <= 10 + 4


def test_memory_holds_at_most_one_interval(make_job, monkeypatch) -> None:
    spec = _plan(make_job({"val": 450}, {"checkpoint": {"every_items": 40}}))
    largest = [0]
    original = Checkpointer.add

    def spy(self, row):
        original(self, row)
        largest[0] = max(largest[0], len(self.rows) + self.writing)

    monkeypatch.setattr(Checkpointer, "add", spy)
    run_task(spec, "val", 0, MANUAL)
    # rows held = one interval, plus at most the items that were in flight (4)
    assert 0 < largest[0] <= 40 + 4


def test_item_failures_become_error_rows_and_shard_finishes(make_job, monkeypatch) -> None:
    monkeypatch.setenv("TEST_FAIL_IDS", "val-item-00001,val-item-00007")
    spec = _plan(make_job({"val": 10}))
    outcome = run_task(spec, "val", 0, MANUAL)
    assert outcome.state == "complete" and outcome.exit_code == 1  # finished, failures remain
    rows = {r["item_id"]: r for r in read_rows(spec.run_dir, "val").to_pylist()}
    assert len(rows) == 10
    assert rows["val-item-00001"]["status"] == "error"
    assert "RuntimeError: boom on val-item-00001" in rows["val-item-00001"]["error"]
    assert rows["val-item-00001"]["result"] is None
    assert rows["val-item-00002"]["status"] == "ok"


def test_sync_processor(make_job) -> None:
    spec = _plan(make_job({"val": 5}, {"processor": {"function": "procs:process_sync"}}))
    assert run_task(spec, "val", 0, MANUAL).exit_code == 0
    assert all(json.loads(r)["sync"] for r in read_rows(spec.run_dir, "val").column("result")
               .to_pylist())


def test_unserialisable_results_become_error_rows(make_job) -> None:
    spec2 = _plan(make_job({"other": 5}, {"processor": {"function": "procs:unserialisable"}}))
    run_task(spec2, "other", 0, MANUAL)
    errors = [r for r in read_rows(spec2.run_dir, "other").to_pylist() if r["status"] == "error"]
    assert [r["item_id"] for r in errors] == ["other-item-00003"]
    assert "not JSON-serialisable" in errors[0]["error"]


def test_resume_skips_ok_and_retries_errors_until_max_attempts(make_job, monkeypatch, tmp_path):
    calls = tmp_path / "calls.log"
    monkeypatch.setenv("TEST_CALL_LOG", str(calls))
    monkeypatch.setenv("TEST_FAIL_IDS", "val-item-00003")
    spec = _plan(make_job({"val": 20}, {"processor": {"max_attempts": 2}}))
    assert run_task(spec, "val", 0, MANUAL).exit_code == 1
    assert sum(call_log(calls).values()) == 19
    # a finished shard is not rerun...
    assert run_task(spec, "val", 0, MANUAL).state == "already-complete"
    # ...unless errors are retried: only the failed item runs, and fails again (attempt 2)
    assert run_task(spec, "val", 0, MANUAL, retry_errors=True).exit_code == 1
    assert sum(call_log(calls).values()) == 19
    attempts = [r["attempts"] for r in read_rows(spec.run_dir, "val").to_pylist()
                if r["item_id"] == "val-item-00003"]
    assert attempts == [1, 2]
    # max_attempts = 2 reached: a further retry does not run it
    monkeypatch.setenv("TEST_FAIL_IDS", "")
    run_task(spec, "val", 0, MANUAL, retry_errors=True)
    assert "val-item-00003" not in call_log(calls)
    spec3 = load_spec(spec.path)
    object.__setattr__(spec3.processor, "max_attempts", 3)  # raise the limit: now it succeeds
    assert run_task(spec3, "val", 0, MANUAL, retry_errors=True).exit_code == 0
    assert call_log(calls)["val-item-00003"] == 1
    assert all(n == 1 for n in call_log(calls).values())  # no ok item ever ran twice


def test_signal_stops_flushes_and_resume_finishes(make_job, monkeypatch, tmp_path) -> None:
    calls = tmp_path / "calls.log"
    monkeypatch.setenv("TEST_CALL_LOG", str(calls))
    monkeypatch.setenv("TEST_LATENCY", "0.02")
    spec = _plan(make_job({"val": 400}, {"checkpoint": {"every_items": 30},
                                        "slurm": {"signal_grace_s": 2}}))
    timer = threading.Timer(0.6, os.kill, (os.getpid(), signal.SIGUSR1))
    timer.start()
    first = run_task(spec, "val", 0, MANUAL)
    timer.join()
    assert first.state == "stopped" and first.exit_code == 1
    assert first.stats is not None and first.stats.stop_reason == "received SIGUSR1"
    done_first = set(read_rows(spec.run_dir, "val").column("item_id").to_pylist())
    assert 0 < len(done_first) < 400
    assert not layout.success_path(layout.shard_dir(spec.run_dir, "val", 0)).exists()
    # everything that completed before the stop was flushed (drained, not dropped)
    assert set(call_log(calls)) == done_first
    second = run_task(spec, "val", 0, MANUAL)
    assert second.state == "complete"
    assert len(call_log(calls)) == 400 and max(call_log(calls).values()) == 1


def test_backstop_deadline_stops_without_a_signal(make_job, monkeypatch) -> None:
    import time

    monkeypatch.setenv("TEST_LATENCY", "0.05")
    spec = _plan(make_job({"val": 200}, {"slurm": {"signal_grace_s": 2}}))
    env = TaskEnv("local", "1", "1", 0, 0, end_time=time.time() + 2.5)  # backstop at +0.9 s
    outcome = run_task(spec, "val", 0, env)
    assert outcome.state == "stopped"
    assert outcome.stats is not None and "backstop" in (outcome.stats.stop_reason or "")


@pytest.mark.parametrize("shard", [-1, 1])
def test_unknown_shard_is_a_usage_error(make_job, shard) -> None:
    from shardrun.errors import UsageError

    spec = _plan(make_job({"val": 5}))
    with pytest.raises(UsageError, match="no shard"):
        run_task(spec, "val", shard, MANUAL)


def test_changed_manifest_refuses_to_run(make_job) -> None:
    from shardrun.errors import UsageError

    spec = _plan(make_job({"val": 5}))
    manifest = spec.splits["val"]
    manifest.write_text(manifest.read_text() + "extra\n")
    with pytest.raises(UsageError, match="changed since planning"):
        run_task(spec, "val", 0, MANUAL)


def test_processor_value_errors_are_reported_as_themselves(make_job, monkeypatch) -> None:
    """A ValueError raised by the processor is its own error, not a serialisation one."""
    monkeypatch.setenv("TEST_FAIL_IDS", "val-item-00001")
    spec = _plan(make_job({"val": 3}, {"processor": {"function": "procs:process_sync"}}))
    run_task(spec, "val", 0, MANUAL)
    row = next(r for r in read_rows(spec.run_dir, "val").to_pylist()
               if r["item_id"] == "val-item-00001")
    assert row["error"] == "ValueError: sync boom on val-item-00001"

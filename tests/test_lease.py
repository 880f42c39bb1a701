"""At most one runner per shard (guarantee 8)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from helpers import read_rows
from shardrun import layout
from shardrun.lease import Holder, Lease, LeaseHeldError, stale_reason
from shardrun.planfile import ensure_plan
from shardrun.spec import load_spec
from shardrun.task import run_task
from shardrun.taskenv import TaskEnv

ME = Holder("slurm:7_3", "7_3", 1)


def test_stale_reasons() -> None:
    host = socket.gethostname()
    alive = {"host": host, "pid": os.getpid(), "job_key": "9_1", "restart": 0}
    assert stale_reason(alive, 5, ME, 90) is None
    assert "heartbeat" in (stale_reason(alive, 91, ME, 90) or "")
    dead = {**alive, "pid": 2**22 + 12345}
    assert "not running" in (stale_reason(dead, 5, ME, 90) or "")
    elsewhere = {**alive, "host": "other-node", "pid": 1}
    assert stale_reason(elsewhere, 5, ME, 90) is None
    earlier_run = {**elsewhere, "job_key": "7_3", "restart": 0}
    assert "earlier run" in (stale_reason(earlier_run, 5, ME, 90) or "")


def test_second_lease_is_refused_and_release_frees_it(tmp_path) -> None:
    first = Lease(tmp_path, Holder("a", None, 0))
    first.acquire()
    with pytest.raises(LeaseHeldError, match="being run by a"):
        Lease(tmp_path, Holder("b", None, 0)).acquire()
    first.release()
    second = Lease(tmp_path, Holder("b", None, 0))
    second.acquire()
    assert second.still_held() and not first.still_held()


def test_expired_heartbeat_is_taken_over_but_not_before(tmp_path) -> None:
    lease = layout.lease_path(tmp_path)
    lease.write_text(json.dumps({"token": "x", "worker": "w", "host": "other-node", "pid": 1}))
    with pytest.raises(LeaseHeldError):
        Lease(tmp_path, Holder("b", None, 0), stale_after_s=60).acquire()
    old = time.time() - 61
    os.utime(lease, (old, old))
    taker = Lease(tmp_path, Holder("b", None, 0), stale_after_s=60)
    taker.acquire()
    assert taker.still_held()


def test_second_runner_exits_cleanly_and_writes_nothing(make_job, monkeypatch) -> None:
    monkeypatch.setenv("TEST_LATENCY", "0.05")
    job = make_job({"val": 200}, {"checkpoint": {"every_items": 10}})
    spec = load_spec(job)
    ensure_plan(spec)
    first = subprocess.Popen([sys.executable, "-m", "shardrun", "run-task", str(job),
                              "--split", "val", "--shard", "0"], stderr=subprocess.PIPE)
    lease = layout.lease_path(layout.shard_dir(spec.run_dir, "val", 0))
    deadline = time.time() + 20
    while not lease.exists() and time.time() < deadline:
        time.sleep(0.05)
    second = TaskEnv("manual", None, None, None, 0, None)
    outcome = run_task(spec, "val", 0, second)
    assert outcome.state == "held" and outcome.exit_code == 1
    assert "being run by" in outcome.message
    assert first.wait(timeout=60) == 0
    workers = set(read_rows(spec.run_dir, "val").column("worker").to_pylist())
    assert workers == {f"manual:{socket.gethostname()}:{first.pid}"}
    assert read_rows(spec.run_dir, "val").num_rows == 200

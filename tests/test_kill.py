"""SIGKILL at random moments loses at most every_items + concurrency items (guarantee 6),
a truncated part is quarantined and redone, and a rerun + merge gives every item once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq

from helpers import all_parts, call_log, merged_ids, ok_ids, planned_ids
from shardrun import layout
from shardrun.cli import main
from shardrun.planfile import ensure_plan
from shardrun.spec import load_spec

EVERY, CONCURRENCY = 20, 4


def _start(job, env):
    return subprocess.Popen([sys.executable, "-m", "shardrun", "run-task", str(job), "--split",
                             "train", "--shard", "0"], env=env, stderr=subprocess.DEVNULL)


def test_sigkill_at_random_moments_loses_little_and_merges_exactly_once(make_job, tmp_path):
    calls = tmp_path / "calls.log"
    job = make_job({"train": 3000}, {"processor": {"concurrency": CONCURRENCY},
                                     "checkpoint": {"every_items": EVERY}})
    spec = load_spec(job)
    ensure_plan(spec)
    env = {**os.environ, "TEST_CALL_LOG": str(calls), "TEST_LATENCY": "0.01"}
    rng = random.Random(1234)
    worst, kills = 0, 0
    for _trial in range(6):
        before = set(ok_ids(spec.run_dir, "train"))
        started = sum(call_log(calls).values())
        proc = _start(job, env)
        while sum(call_log(calls).values()) == started and proc.poll() is None:
            time.sleep(0.01)  # wait until it is processing, then kill at a random moment
        time.sleep(rng.uniform(0.0, 0.6))
        if proc.poll() is not None:
            break  # finished before the kill
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
        completed = set(call_log(calls))  # items whose work was done, by any run so far
        saved = ok_ids(spec.run_dir, "train")
        lost = len(completed - saved)
        worst = max(worst, lost)
        assert lost <= EVERY + CONCURRENCY, f"trial {_trial}: lost {lost} items of work"
        assert before <= saved
        # no half-written file is ever visible, and every visible part reads
        for part in all_parts(spec.run_dir, "train"):
            pq.read_table(part)
    assert kills == 6
    final = _start(job, env)
    assert final.wait(timeout=120) == 0
    assert main(["merge", str(job)]) == 0
    assert sorted(merged_ids(spec.run_dir, "train")) == sorted(planned_ids(job.parent, "train"))
    print(f"kills={kills} worst_loss={worst}")


def test_truncated_part_is_quarantined_and_its_items_redone(make_job, tmp_path, monkeypatch):
    calls = tmp_path / "calls.log"
    monkeypatch.setenv("TEST_CALL_LOG", str(calls))
    job = make_job({"train": 95}, {"checkpoint": {"every_items": 30}})
    spec = load_spec(job)
    ensure_plan(spec)
    assert main(["run-task", str(job), "--split", "train", "--shard", "0"]) == 0
    shard = layout.shard_dir(spec.run_dir, "train", 0)
    parts = all_parts(spec.run_dir, "train")
    victim = parts[1]
    lost_ids = pq.read_table(victim).column("item_id").to_pylist()
    victim.write_bytes(victim.read_bytes()[:100])  # truncated (e.g. a disk that lied)
    layout.success_path(shard).unlink()
    assert main(["run-task", str(job), "--split", "train", "--shard", "0"]) == 0
    assert (shard / "quarantine" / victim.name).exists() and not victim.exists()
    counts = call_log(calls)
    assert {i for i, n in counts.items() if n == 2} == set(lost_ids)  # redone, nothing else
    assert main(["merge", str(job)]) == 0
    assert sorted(merged_ids(spec.run_dir, "train")) == sorted(planned_ids(job.parent, "train"))

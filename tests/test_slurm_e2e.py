"""End to end on the real single-node SLURM cluster (scripts/slurm-local-cluster.sh)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from helpers import call_log, merged_ids, planned_ids
from shardrun import layout
from shardrun.backends.slurm import POLL_FACTOR, POLL_MAX_S, POLL_START_S, QUEUED_STATES
from shardrun.cli import main
from shardrun.planfile import ensure_plan
from shardrun.runops import dispatch
from shardrun.scheduler import Scheduler
from shardrun.spec import JobSpec, load_spec
from shardrun.submissions import read_submissions

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

# 1 minute is SLURM's smallest --time; a 55 s grace makes the signal due 5 s in (it can come
# ~30 s late; the backstop then fires at 60 - 0.8 x 55 = 16 s).
QUICK_SIGNAL = {"time": "1", "signal_grace_s": 55, "max_concurrent": 2, "mem": "100M"}


def run_job_ids(spec: JobSpec) -> list[str]:
    return [str(r["job_id"]) for r in read_submissions(spec.run_dir)]


def all_done(spec: JobSpec) -> bool:
    plan = ensure_plan(spec).plan
    return all(layout.success_path(layout.shard_dir(spec.run_dir, name, k)).exists()
               for name, split in plan.splits.items() for k in range(len(split.shards)))


def drive(spec: JobSpec, timeout: float = 240) -> None:
    """Wait for the run's jobs to leave the queue, starting requeued ones at once (SLURM
    otherwise holds a requeued job ~2 minutes). A job that requeues itself can be briefly
    absent from squeue, so an empty queue counts only once it has stayed empty for 5 s
    (or every shard is done)."""
    scheduler = Scheduler()
    deadline = time.time() + timeout
    empty_since = None
    held_since: dict[str, float] = {}
    while time.time() < deadline:
        queued = [e for e in scheduler.squeue(run_job_ids(spec)) if e.state in QUEUED_STATES]
        if not queued:
            empty_since = empty_since or time.time()
            if all_done(spec) or time.time() - empty_since >= 5:
                return
        else:
            empty_since = None
        for entry in queued:
            if entry.state == "PENDING" and entry.reason == "BeginTime":
                key = f"{entry.array_job_id}_{entry.task_id}"
                # Starting a job within ~0.1 s of its requeue makes SLURM 22.05 kill it
                # ("Job credential revoked"): let the requeue settle for 2 s first.
                if time.time() - held_since.setdefault(key, time.time()) >= 2:
                    scheduler.start_now(key)
                    held_since.pop(key)
        time.sleep(1)
    pytest.fail(f"jobs {run_job_ids(spec)} still queued after {timeout} s")


def assert_merged_once(job: Path, spec: JobSpec) -> None:
    assert main(["merge", str(job)]) == 0
    for split in spec.splits:
        ids = merged_ids(spec.run_dir, split)
        assert len(ids) == len(set(ids))
        assert sorted(ids) == sorted(planned_ids(job.parent, split))


def test_three_splits_complete_with_few_scheduler_calls(make_job, monkeypatch) -> None:
    monkeypatch.setenv("TEST_LATENCY", "0.05")
    job = make_job({"train": 80, "val": 12, "test": 13}, {
        "slurm": {"time": "5", "max_concurrent": 2, "mem": "100M"},
        "planning": {"est_seconds_per_item": 12.0, "target_fraction": 0.4},  # 40 items/shard
    })
    spec = load_spec(job)
    plan = ensure_plan(spec).plan
    assert len(plan.split("train").shards) == 2
    counting = Scheduler()
    started = time.monotonic()
    dispatch(spec, plan, {"train": [0, 1], "val": [0], "test": [0]}, "slurm", wait=True,
             scheduler=counting)
    elapsed = time.monotonic() - started
    assert counting.calls["sbatch"] == 3  # one per array
    assert counting.calls["scontrol"] == 1  # MaxArraySize, once
    assert counting.calls["sacct"] == 0
    # polls back off from 3 s by 1.5x up to 60 s (plus one confirming poll at the end):
    # count how many fit in the time waited
    polls, delay, waited = 2, POLL_START_S, 0.0
    while waited < elapsed:
        waited += delay
        delay = min(POLL_MAX_S, delay * POLL_FACTOR)
        polls += 1
    assert 1 <= counting.calls["squeue"] <= polls
    assert main(["status", str(job), "--json"]) == 0
    assert_merged_once(job, spec)
    logs = sorted(p.name for p in layout.log_dir(spec.run_dir, "train").glob("*.log"))
    first = read_submissions(spec.run_dir)[0]["job_id"]
    assert logs == [f"{first}_0.log", f"{first}_1.log"]


def test_signal_checkpoint_requeue_resume(make_job, monkeypatch, tmp_path) -> None:
    calls = tmp_path / "calls.log"
    monkeypatch.setenv("TEST_CALL_LOG", str(calls))
    monkeypatch.setenv("TEST_LATENCY", "0.5")
    # 60 items at 2 per second need 30 s; the task is stopped at 5-16 s and must resume
    job = make_job({"train": 60}, {"processor": {"concurrency": 1},
                                   "checkpoint": {"every_items": 5},
                                   "slurm": {**QUICK_SIGNAL, "max_restarts": 5}})
    spec = load_spec(job)
    assert main(["submit", str(job), "--backend", "slurm"]) == 0
    drive(spec)
    counts = call_log(calls)
    assert len(counts) == 60 and max(counts.values()) == 1  # no ok item was redone
    log = next(layout.log_dir(spec.run_dir, "train").glob("*_0.log")).read_text()
    assert "restart 0" in log and "restart 1" in log  # both runs, one log (append mode)
    assert "no new items; draining" in log and "requeued" in log
    success = json.loads(layout.success_path(layout.shard_dir(spec.run_dir, "train", 0))
                         .read_text())
    assert success["restart_count"] >= 1
    assert_merged_once(job, spec)


def test_killed_task_then_requeue_resubmits_only_unfinished(make_job, monkeypatch, tmp_path):
    calls = tmp_path / "calls.log"
    monkeypatch.setenv("TEST_CALL_LOG", str(calls))
    monkeypatch.setenv("TEST_LATENCY", "0.2")
    job = make_job({"train": 60, "val": 5}, {
        "processor": {"concurrency": 1}, "checkpoint": {"every_items": 5},
        "slurm": {"time": "5", "max_concurrent": 2, "mem": "100M"},
        "planning": {"est_seconds_per_item": 3.0, "target_fraction": 0.4},  # 40/shard
    })
    spec = load_spec(job)
    assert main(["submit", str(job), "--backend", "slurm"]) == 0
    train_job = next(r["job_id"] for r in read_submissions(spec.run_dir) if r["split"] == "train")
    shard1 = layout.shard_dir(spec.run_dir, "train", 1)
    deadline = time.time() + 60
    while len(layout.list_parts(shard1)) < 2 and time.time() < deadline:
        time.sleep(0.2)
    assert layout.list_parts(shard1), "shard 1 never checkpointed"
    # --full: the task is the batch shell itself (exec), which plain --signal leaves alone
    subprocess.run(["scancel", "--full", "--signal=KILL", f"{train_job}_1"], check=True)
    drive(spec)
    assert not layout.success_path(shard1).exists()
    assert main(["requeue", str(job), "--backend", "slurm"]) == 0
    last = read_submissions(spec.run_dir)[-1]
    assert (last["split"], last["indices"], last["offset"]) == ("train", [0], 1)  # shard 1 only
    drive(spec)
    counts = call_log(calls)
    assert len(counts) == 65
    redone = [i for i, n in counts.items() if n > 1]
    assert len(redone) <= 5 + 1  # at most every_items + concurrency were lost by the kill
    assert_merged_once(job, spec)


def test_shard_that_keeps_failing_stops_after_max_restarts(make_job, monkeypatch) -> None:
    monkeypatch.setenv("TEST_LATENCY", "2")
    job = make_job({"train": 500}, {"processor": {"concurrency": 1},
                                    "slurm": {**QUICK_SIGNAL, "max_restarts": 1}})
    spec = load_spec(job)
    assert main(["submit", str(job), "--backend", "slurm"]) == 0
    drive(spec)
    log = next(layout.log_dir(spec.run_dir, "train").glob("*_0.log")).read_text()
    assert "not requeueing: restart 1 reached max_restarts = 1" in log
    deadline = time.time() + 30
    state = None
    while time.time() < deadline:  # sacct learns the final state shortly after the end
        main(["status", str(job), "--json"])
        rows = Scheduler().sacct(run_job_ids(spec))
        if rows and rows[-1].state == "FAILED":
            break
        time.sleep(1)
    from shardrun.runops import shard_rows

    state = shard_rows(spec, ensure_plan(spec).plan)[0].state
    assert state == "failed"
    assert main(["status", str(job)]) == 1


def test_submitit_backend_completes_and_merges(make_job, monkeypatch) -> None:
    monkeypatch.setenv("TEST_LATENCY", "0.02")
    job = make_job({"train": 50, "val": 10, "test": 11}, {
        "slurm": {"time": "5", "max_concurrent": 2, "mem": "100M"},
        "planning": {"est_seconds_per_item": 12.0, "target_fraction": 0.4},
    })
    spec = load_spec(job)
    assert main(["submit", str(job), "--backend", "submitit", "--wait"]) == 0
    records = read_submissions(spec.run_dir)
    assert {r["backend"] for r in records} == {"submitit"}
    assert (spec.run_dir / "logs" / "train" / "submitit").is_dir()
    assert_merged_once(job, spec)


def test_weird_paths_and_the_key_on_the_real_cluster(tmp_path, monkeypatch) -> None:
    """A run directory with spaces and shell metacharacters submits and runs for real, and
    the API key (in the submitter's environment) is in no script, log or file of the run."""
    from conftest import write_job

    key = "SLURM-SECRET-" + "9f3c2a71d4"
    monkeypatch.setenv("EXTRACTION_API_KEY", key)
    root = tmp_path / "we ird $(touch pwned);'x`id`&"
    job = write_job(root, {"train": 12}, {"slurm": {"time": "5", "mem": "100M"}})
    spec = load_spec(job)
    assert main(["submit", str(job), "--backend", "slurm"]) == 0
    drive(spec)
    assert_merged_once(job, spec)
    logs = list(layout.log_dir(spec.run_dir, "train").glob("*.log"))
    assert logs and "complete" in logs[0].read_text()
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()
    for path in root.rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), path

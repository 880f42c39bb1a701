"""The local backend enforces the wall clock like SLURM and restarts unfinished tasks."""

from __future__ import annotations

import json

from helpers import call_log, merged_ids, planned_ids
from shardrun import layout
from shardrun.cli import main
from shardrun.spec import load_spec
from shardrun.submissions import array_spec, read_submissions


def test_array_spec_compresses_ranges() -> None:
    assert array_spec([0, 1, 2, 3], 8) == "0-3%8"
    assert array_spec([5, 1, 3, 4], 2) == "1,3-5%2"
    assert array_spec([7], 1) == "7%1"


def test_signal_checkpoint_restart_resume(make_job, monkeypatch, tmp_path, capsys) -> None:
    calls = tmp_path / "calls.log"
    monkeypatch.setenv("TEST_CALL_LOG", str(calls))
    monkeypatch.setenv("TEST_LATENCY", "0.05")
    # 2 in flight at 0.05 s = 40 items/s: 300 items need ~7.5 s; the wall clock is 6 s
    job = make_job({"train": 300, "val": 20}, {
        "processor": {"concurrency": 2},
        "checkpoint": {"every_items": 25},
        "slurm": {"time": "0:06", "signal_grace_s": 2, "max_restarts": 3, "max_concurrent": 2},
        "planning": {"est_seconds_per_item": 0.001},
    })
    assert main(["submit", str(job), "--backend", "local"]) == 0
    err = capsys.readouterr().err
    assert "signalled" in err
    spec = load_spec(job)
    log = next(layout.log_dir(spec.run_dir, "train").glob("*_0.log")).read_text()
    assert "=== local run 0" in log and "=== local run 1" in log  # append mode keeps both
    assert "received SIGUSR1" in log
    counts = call_log(calls)
    assert len(counts) == 320
    # an item whose work finished before the stop was never redone: at most the items
    # dropped unrecorded in the drain could run twice, and the drain lets them finish
    assert max(counts.values()) == 1
    success = json.loads((layout.shard_dir(spec.run_dir, "train", 0) / "_SUCCESS.json")
                         .read_text())
    assert success["restart_count"] >= 1
    subs = read_submissions(spec.run_dir)
    assert {s["split"] for s in subs} == {"train", "val"}
    assert main(["merge", str(job)]) == 0
    ids = merged_ids(spec.run_dir, "train")
    assert len(ids) == 300 and sorted(ids) == sorted(planned_ids(job.parent, "train"))


def test_task_that_ignores_the_signal_is_killed_and_fails_after_max_restarts(
        make_job, monkeypatch, capsys) -> None:
    monkeypatch.setenv("TEST_LATENCY", "30")  # sync sleep: never finishes inside the clock
    job = make_job({"train": 4}, {
        "processor": {"function": "procs:process_sync", "concurrency": 1},
        "slurm": {"time": "0:03", "signal_grace_s": 1, "max_restarts": 1},
    })
    assert main(["submit", str(job), "--backend", "local"]) == 1
    assert "1 failed" in capsys.readouterr().err
    assert main(["status", str(job), "--json"]) == 1
    status = json.loads(capsys.readouterr().out)
    assert status["shards"][0]["state"] == "not-started"  # killed: no live lease, no parts
    assert main(["requeue", str(job), "--dry-run"]) == 0
    assert "requeue train: shards 0" in capsys.readouterr().out


def test_requeue_runs_only_unfinished_shards(make_job, monkeypatch, tmp_path, capsys) -> None:
    calls = tmp_path / "calls.log"
    monkeypatch.setenv("TEST_CALL_LOG", str(calls))
    job = make_job({"train": 250}, {"planning": {"est_seconds_per_item": 12.0}})
    assert main(["plan", str(job)]) == 0
    assert main(["run-task", str(job), "--split", "train", "--shard", "1"]) == 0
    before = set(call_log(calls))
    assert main(["requeue", str(job), "--backend", "local"]) == 0
    out = capsys.readouterr().out
    assert "requeue train: shards 0,2" in out
    spec = load_spec(job)
    last = read_submissions(spec.run_dir)[-1]
    assert last["indices"] == [0, 2]
    counts = call_log(calls)
    assert len(counts) == 250 and max(counts.values()) == 1
    assert before.isdisjoint(set(counts) - before)
    assert main(["requeue", str(job)]) == 0
    assert "nothing to requeue" in capsys.readouterr().out


def test_requeue_errors_retries_only_failed_items(make_job, monkeypatch, tmp_path) -> None:
    calls = tmp_path / "calls.log"
    monkeypatch.setenv("TEST_CALL_LOG", str(calls))
    monkeypatch.setenv("TEST_FAIL_IDS", "val-item-00004")
    job = make_job({"val": 10})
    assert main(["submit", str(job), "--backend", "local"]) == 1
    monkeypatch.setenv("TEST_FAIL_IDS", "")
    assert main(["requeue", str(job)]) == 0  # without --errors: the shard is done
    assert main(["requeue", str(job), "--errors"]) == 0
    counts = call_log(calls)
    assert counts["val-item-00004"] == 1 and len(counts) == 10 and max(counts.values()) == 1
    assert main(["status", str(job)]) == 0

"""Chaos: kills and signals at random moments, faults from the API; nothing may be lost.

A short run is part of `make test`; a long one by hand:

    CHAOS_TRIALS=300 .venv/bin/pytest tests/chaos -s

Each trial starts `run-task` on the same shard and interrupts it: SIGKILL at a random moment,
SIGKILL while a part is written but not yet renamed, SIGTERM or the configured signal at a
random moment. After each: every visible part reads, no temp file is visible as a part, and
the work lost (items whose processing finished but that no part holds) is within
every_items + concurrency for a kill and zero for a signal. At the end a rerun finishes the
shard (after a kill just before _SUCCESS.json is published) and merge gives each item once.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter

import pyarrow.parquet as pq
import pytest

from helpers import all_parts, call_log, merged_ids, ok_ids, planned_ids
from shardrun import layout
from shardrun.cli import main
from shardrun.planfile import ensure_plan
from shardrun.spec import load_spec

TRIALS = int(os.environ.get("CHAOS_TRIALS", "10"))
EVERY, CONCURRENCY = 20, 8
KINDS = ["kill", "kill-mid-part", "term", "usr1"]


def _start(job, env, extra_env=None):
    return subprocess.Popen(
        [sys.executable, "-m", "shardrun", "run-task", str(job), "--split", "train",
         "--shard", "0"], env={**env, **(extra_env or {})}, stderr=subprocess.DEVNULL)


def _wait_progress(calls, proc, since: int, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while sum(call_log(calls).values()) <= since and proc.poll() is None:
        if time.time() > deadline:
            pytest.fail("run-task made no progress")
        time.sleep(0.01)


def test_chaos_trials(make_job, tmp_path) -> None:
    calls = tmp_path / "calls.log"
    marker = tmp_path / "fault.marker"
    items = TRIALS * 800  # a trial gets through at most ~700 items: the shard outlasts them
    job = make_job({"train": items}, {"processor": {"concurrency": CONCURRENCY},
                                      "checkpoint": {"every_items": EVERY},
                                      "slurm": {"signal_grace_s": 4}})
    spec = load_spec(job)
    ensure_plan(spec)
    env = {**os.environ, "TEST_CALL_LOG": str(calls), "TEST_LATENCY": "0.004"}
    rng = random.Random(int(os.environ.get("CHAOS_SEED", "20261204")))
    tally: Counter[str] = Counter()
    worst = {"kill": 0, "signal": 0}
    for trial in range(TRIALS):
        kind = KINDS[trial % len(KINDS)] if trial < len(KINDS) else rng.choice(KINDS)
        done_before = len(calls.read_text().splitlines()) if calls.exists() else 0
        if kind == "kill-mid-part":
            marker.unlink(missing_ok=True)
            proc = _start(job, env, {"SHARDRUN_FAULT_PAUSE": "part-before-rename:30",
                                     "SHARDRUN_FAULT_MARKER": str(marker)})
            deadline = time.time() + 30
            while not marker.exists() and proc.poll() is None and time.time() < deadline:
                time.sleep(0.005)
            assert marker.exists(), "the task never reached a part write"
            hidden = list(layout.shard_dir(spec.run_dir, "train", 0).glob(".part-*.tmp-*"))
            assert hidden, "a part should be half-published (temp file) at this point"
            proc.send_signal(signal.SIGKILL)
        else:
            proc = _start(job, env)
            _wait_progress(calls, proc, done_before)
            time.sleep(rng.uniform(0.0, 0.4))
            assert proc.poll() is None, "the shard finished before the trials did"
            proc.send_signal({"kill": signal.SIGKILL, "term": signal.SIGTERM,
                              "usr1": signal.SIGUSR1}[kind])
        proc.wait(timeout=60)
        tally[kind] += 1
        for part in all_parts(spec.run_dir, "train"):
            pq.read_table(part)  # every visible part is whole
        # work of this trial: items whose processing finished while it ran
        finished_now = {line.split(" ", 1)[1]
                        for line in calls.read_text().splitlines()[done_before:]}
        lost = len(finished_now - ok_ids(spec.run_dir, "train"))
        family = "kill" if kind.startswith("kill") else "signal"
        worst[family] = max(worst[family], lost)
        bound = EVERY + CONCURRENCY if family == "kill" else 0
        assert lost <= bound, f"trial {trial} ({kind}): {lost} items of work lost"
    # the last interruption: killed just before _SUCCESS.json is published
    marker.unlink(missing_ok=True)
    proc = _start(job, env, {"SHARDRUN_FAULT_PAUSE": "success-before-rename:30",
                             "SHARDRUN_FAULT_MARKER": str(marker)})
    deadline = time.time() + 120
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert marker.exists()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    shard = layout.shard_dir(spec.run_dir, "train", 0)
    assert not layout.success_path(shard).exists()
    final = _start(job, env)
    assert final.wait(timeout=120) == 0
    assert layout.success_path(shard).exists()
    assert not list(shard.glob(".*.tmp-*")), "temp files left after a clean finish"
    assert main(["merge", str(job)]) == 0
    ids = merged_ids(spec.run_dir, "train")
    assert len(ids) == items and sorted(ids) == sorted(planned_ids(job.parent, "train"))
    redone = sum(n - 1 for n in call_log(calls).values())
    print(f"\nchaos: trials={sum(tally.values())} {dict(tally)} worst loss after a kill="
          f"{worst['kill']} (bound {EVERY + CONCURRENCY}), after a signal={worst['signal']}, "
          f"items redone in all={redone}, violations=0")


def test_chaos_with_a_failing_api(tmp_path, monkeypatch) -> None:
    """Kills and signals while the API fails at random: every item merged exactly once."""
    from shardrun.emulator import EmulatorConfig, start_in_thread

    key = "chaos-key-7d1e"
    monkeypatch.setenv("EXTRACTION_API_KEY", key)
    server = start_in_thread(EmulatorConfig(
        rate_per_s=500, poll_rate_per_s=1000, latency_s=0.01, poll_delay_s=0.02,
        retry_after_s=0, fail_rate=0.1, reset_rate=0.05, malformed_rate=0.05,
        failed_op_rate=0.02, api_key=key, seed=3))
    try:
        docs = tmp_path / "docs"
        docs.mkdir()
        n = 600
        for i in range(n):
            (docs / f"d{i:04d}.pdf").write_bytes(b"%PDF " + bytes([i % 256]) * 50)
        (tmp_path / "train.txt").write_text("".join(f"docs/d{i:04d}.pdf\n" for i in range(n)))
        (tmp_path / "job.toml").write_text(f"""
name = "chaos-api"
run_dir = "run"
[splits]
train = "train.txt"
[processor]
kind = "prebuilt-extraction"
endpoint = "{server.url}"
concurrency = 16
timeout_s = 5
max_attempts = 8
[checkpoint]
every_items = 20
[slurm]
time = "10:00"
signal_grace_s = 4
[planning]
est_seconds_per_item = 0.001
""")
        job = tmp_path / "job.toml"
        spec = load_spec(job)
        ensure_plan(spec)
        rng = random.Random(5)
        for _ in range(max(3, TRIALS // 2)):
            proc = _start(job, dict(os.environ))
            time.sleep(rng.uniform(0.8, 1.6))
            if proc.poll() is None:
                proc.send_signal(rng.choice([signal.SIGKILL, signal.SIGTERM, signal.SIGUSR1]))
            proc.wait(timeout=60)
            for part in all_parts(spec.run_dir, "train"):
                pq.read_table(part)
        final = _start(job, dict(os.environ))
        final.wait(timeout=180)
        assert layout.success_path(layout.shard_dir(spec.run_dir, "train", 0)).exists()
        main(["merge", str(job)])  # 1 when some operations 'failed': they are error rows
        ids = merged_ids(spec.run_dir, "train")
        assert len(ids) == n == len(set(ids))
    finally:
        server.shutdown()
        server.server_close()

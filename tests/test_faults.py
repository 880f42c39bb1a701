"""Filesystem faults and duplicate runners: nothing written is lost, the error is clear."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from helpers import all_parts, merged_ids, planned_ids, read_rows
from shardrun import layout, parts
from shardrun.cli import main
from shardrun.planfile import ensure_plan
from shardrun.spec import load_spec
from shardrun.task import run_task
from shardrun.taskenv import TaskEnv

MANUAL = TaskEnv("manual", None, None, None, 0, None)
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("mount") is None,
                               reason="needs root to mount a small tmpfs")


def test_disk_full_while_writing_a_part(make_job, monkeypatch) -> None:
    spec = load_spec(make_job({"train": 100}, {"checkpoint": {"every_items": 10}}))
    ensure_plan(spec)
    real = parts.atomic_write_table
    calls = {"n": 0}

    def full_disk(path, table, fault_point=None):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, table, fault_point)

    monkeypatch.setattr(parts, "atomic_write_table", full_disk)
    outcome = run_task(spec, "train", 0, MANUAL)
    assert outcome.state == "write-failed" and outcome.exit_code == 1
    assert "No space left on device" in outcome.message
    assert "2 part(s) already written are intact" in outcome.message
    written = all_parts(spec.run_dir, "train")
    assert len(written) == 2 and all(pq.read_table(p).num_rows == 10 for p in written)
    monkeypatch.setattr(parts, "atomic_write_table", real)
    assert run_task(spec, "train", 0, MANUAL).exit_code == 0
    assert main(["merge", str(spec.path)]) == 0
    assert sorted(merged_ids(spec.run_dir, "train")) == sorted(
        planned_ids(spec.path.parent, "train"))


@pytest.fixture
def small_tmpfs(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@ROOT_ONLY
def test_real_disk_full_stops_with_a_clear_error(small_tmpfs, monkeypatch, capsys) -> None:
    from conftest import write_job

    monkeypatch.setenv("TEST_PAYLOAD_BYTES", "4000")  # big, incompressible-ish results
    job = write_job(small_tmpfs, {"train": 2000},
                    {"processor": {"function": "procs:payload"},
                     "checkpoint": {"every_items": 20}})
    assert main(["plan", str(job)]) == 0
    code = main(["run-task", str(job), "--split", "train", "--shard", "0"])
    assert code == 1
    shard = layout.shard_dir(small_tmpfs / "run", "train", 0)
    written = layout.list_parts(shard)
    assert written, "some parts fit before the disk filled"
    for _, part in written:
        pq.read_table(part)  # the earlier parts are whole
    assert not list(shard.glob(".*.tmp-*")), "the failed temp file was cleaned up"


@ROOT_ONLY
def test_read_only_run_directory(small_tmpfs, capsys) -> None:
    from conftest import write_job

    job = write_job(small_tmpfs, {"train": 10})
    assert main(["plan", str(job)]) == 0
    subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)], check=True)
    capsys.readouterr()
    assert main(["run-task", str(job), "--split", "train", "--shard", "0"]) == 1
    assert "Read-only file system" in capsys.readouterr().err
    assert main(["status", str(job)]) == 1  # status only reads
    assert not (small_tmpfs / "run" / "shards").exists()


def test_two_runners_started_at_once_one_proceeds(make_job, monkeypatch) -> None:
    monkeypatch.setenv("TEST_LATENCY", "0.01")
    job = make_job({"train": 300}, {"checkpoint": {"every_items": 25}})
    spec = load_spec(job)
    ensure_plan(spec)
    argv = [sys.executable, "-m", "shardrun", "run-task", str(job), "--split", "train",
            "--shard", "0"]
    for _round in range(3):
        for path in layout.shard_dir(spec.run_dir, "train", 0).glob("*"):
            if path.is_file():
                path.unlink()
        procs = [subprocess.Popen(argv, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        results = [(p.wait(timeout=60), p.stderr.read()) for p in procs]  # type: ignore[union-attr]
        codes = sorted(code for code, _ in results)
        assert codes == [0, 1], results
        loser = next(text for code, text in results if code == 1)
        assert "being run by" in loser
        rows = read_rows(spec.run_dir, "train")
        assert rows.num_rows == 300 and len(set(rows.column("worker").to_pylist())) == 1
    assert main(["merge", str(job)]) == 0
    assert len(set(merged_ids(spec.run_dir, "train"))) == 300


def test_stale_lease_of_a_killed_task_is_taken_over(make_job, monkeypatch) -> None:
    monkeypatch.setenv("TEST_LATENCY", "0.02")
    job = make_job({"train": 400}, {"checkpoint": {"every_items": 10}})
    spec = load_spec(job)
    ensure_plan(spec)
    proc = subprocess.Popen([sys.executable, "-m", "shardrun", "run-task", str(job), "--split",
                             "train", "--shard", "0"], stderr=subprocess.DEVNULL)
    lease = layout.lease_path(layout.shard_dir(spec.run_dir, "train", 0))
    deadline = time.time() + 30
    while not all_parts(spec.run_dir, "train") and time.time() < deadline:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    assert lease.exists()  # SIGKILL leaves the lease behind
    outcome = run_task(spec, "train", 0, MANUAL)  # same host, dead pid: taken over at once
    assert outcome.state == "complete"
    assert not lease.exists()

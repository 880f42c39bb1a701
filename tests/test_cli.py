"""The CLI as a function: help, exit codes, status output, the public surface."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import shardrun
from shardrun.cli import main


def test_public_surface_is_pinned() -> None:
    assert sorted(shardrun.__all__) == sorted([
        "ItemError", "JobSpec", "Plan", "Processor", "SchedulerError", "UsageError",
        "__version__", "ensure_plan", "load_spec",
    ])


def test_help_and_unknown_commands() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["submit", "x.toml", "--backend", "mars"])
    assert exc.value.code == 2


def test_python_dash_m_works() -> None:
    done = subprocess.run([sys.executable, "-m", "shardrun", "--version"], capture_output=True,
                          text=True, check=True)
    assert done.stdout.startswith("shardrun ")


def test_status_before_and_after(make_job, capsys) -> None:
    job = make_job({"train": 30, "val": 5})
    assert main(["status", str(job)]) == 2
    assert "no plan yet" in capsys.readouterr().err
    assert main(["plan", str(job)]) == 0
    capsys.readouterr()
    assert main(["status", str(job), "--json"]) == 1
    status = json.loads(capsys.readouterr().out)
    assert [s["state"] for s in status["shards"]] == ["not-started", "not-started"]
    assert main(["submit", str(job), "--backend", "local"]) == 0
    capsys.readouterr()
    assert main(["status", str(job), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert {s["split"]: (s["done"], s["items"]) for s in status["splits"]} == {
        "train": (30, 30), "val": (5, 5)}
    assert all(s["state"] == "done" and s["items_per_s"] > 0 for s in status["shards"])
    assert main(["status", str(job)]) == 0
    table = capsys.readouterr().out
    assert "train" in table and "30/30" in table and "done" in table


def test_run_task_without_a_shard_is_a_usage_error(make_job, capsys) -> None:
    job = make_job({"train": 3})
    main(["plan", str(job)])
    assert main(["run-task", str(job), "--split", "train"]) == 2
    assert "SLURM_ARRAY_TASK_ID" in capsys.readouterr().err
    assert main(["run-task", str(job), "--split", "nope", "--shard", "0"]) == 2


def test_run_task_takes_the_shard_from_the_array_task_id(make_job, monkeypatch) -> None:
    job = make_job({"train": 3})
    main(["plan", str(job)])
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "0")
    monkeypatch.setenv("SHARDRUN_BACKEND", "local")
    assert main(["run-task", str(job), "--split", "train"]) == 0


def test_submit_dry_run_creates_nothing(make_job) -> None:
    job = make_job({"train": 3})
    assert main(["submit", str(job), "--dry-run"]) == 0
    assert not (job.parent / "run").exists()

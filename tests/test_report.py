"""`shardrun report` renders in a real headless Chromium; `status --watch` refreshes."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from shardrun.cli import main
from shardrun.report import error_code

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def chromium(tmp_path) -> list[str]:
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run the report test, but chromium is not installed")
        pytest.skip("chromium not installed (make test installs it when root)")
    return [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]


def test_error_codes() -> None:
    assert error_code("HTTP 503: Transient failure.") == "HTTP 503"
    assert error_code("HTTP 413 InvalidContentLength: too large") == "HTTP 413 InvalidContentLength"
    assert error_code("InvalidContent: corrupted") == "InvalidContent"
    assert error_code("RuntimeError: boom on x") == "RuntimeError"
    assert error_code("") == "other"


def test_report_renders_in_chromium(make_job, monkeypatch, tmp_path, chromium, capsys) -> None:
    monkeypatch.setenv("TEST_LATENCY", "0.05")
    monkeypatch.setenv("TEST_FAIL_IDS", "train-item-00003,train-item-00007")
    job = make_job({"train": 120, "val": 10}, {
        "processor": {"concurrency": 2}, "checkpoint": {"every_items": 10},
        "slurm": {"time": "0:03", "signal_grace_s": 1, "max_restarts": 3},
        "planning": {"est_seconds_per_item": 0.001}})
    main(["submit", str(job), "--backend", "local"])
    assert main(["report", str(job)]) == 0
    report = tmp_path / "run" / "report"
    page = report / "report.html"
    assert (report / "report.png").stat().st_size > 10_000
    dom = subprocess.run([*chromium, "--dump-dom", page.as_uri()], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    for needle in ("<svg", 'id="shards"', 'id="splits"', 'id="error-codes"', "RuntimeError",
                   "train", "timeline per shard"):
        assert needle in dom, needle
    shot = tmp_path / "shot.png"
    subprocess.run([*chromium, f"--screenshot={shot}", "--window-size=1200,1600",
                    page.as_uri()], capture_output=True, timeout=120, check=True)
    from matplotlib import image

    pixels = image.imread(shot)
    assert pixels.shape[0] >= 1000 and pixels.shape[1] >= 1000
    assert pixels.std() > 0.05  # not a blank page


def test_status_watch_stops_when_the_run_is_complete(make_job, capsys) -> None:
    job = make_job({"train": 5})
    assert main(["submit", str(job), "--backend", "local"]) == 0
    capsys.readouterr()
    assert main(["status", str(job), "--watch", "--interval", "2"]) == 0
    assert "5/5" in capsys.readouterr().out

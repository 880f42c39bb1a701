"""The prebuilt-extraction processor against the emulator over real HTTP on loopback."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from helpers import read_rows
from shardrun import layout
from shardrun.cli import main
from shardrun.emulator import EmulatorConfig, EmulatorServer, start_in_thread
from shardrun.spec import load_spec

KEY = "emulator-test-key-5f2a9c"


@pytest.fixture
def emulator() -> Iterator[callable]:
    servers: list[EmulatorServer] = []

    def start(**config) -> EmulatorServer:
        server = start_in_thread(EmulatorConfig(api_key=KEY, seed=7, **config))
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def extraction_job(root: Path, server: EmulatorServer, items: int, processor: dict,
                   slurm: dict | None = None, splits: int = 1) -> Path:
    docs = root / "docs"
    docs.mkdir()
    lines = []
    for i in range(items):
        (docs / f"doc-{i:04d}.pdf").write_bytes(b"%PDF-1.4 " + b"x" * (100 + i))
        lines.append(f"docs/doc-{i:04d}.pdf")
    (root / "train.txt").write_text("\n".join(lines) + "\n")
    proc = {"kind": "prebuilt-extraction", "endpoint": server.url, "concurrency": 8,
            "timeout_s": 5, "max_attempts": 6, **processor}
    slurm_section = {"time": "10:00", "signal_grace_s": 30, "max_concurrent": 4, **(slurm or {})}
    per_shard = -(-items // splits)
    text = ['name = "x"', 'run_dir = "run"', "[splits]", 'train = "train.txt"', "[processor]"]
    text += [f"{k} = {json.dumps(v)}" for k, v in proc.items()]
    text += ["[checkpoint]", "every_items = 10", "[slurm]"]
    text += [f"{k} = {json.dumps(v)}" for k, v in slurm_section.items()]
    # size shards so the split has `splits` shards: cap = 0.5 x 600 s x concurrency / est
    est = 0.5 * 600 * proc["concurrency"] / per_shard
    text += ["[planning]", f"est_seconds_per_item = {est}"]
    (root / "job.toml").write_text("\n".join(text) + "\n")
    return root / "job.toml"


def stats(server: EmulatorServer) -> dict:
    return httpx.get(f"{server.url}/stats").json()


def test_429_storm_retry_after_is_honoured(emulator, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("EXTRACTION_API_KEY", KEY)
    server = emulator(rate_per_s=4, retry_after_s=1, latency_s=0.02, poll_delay_s=0.1)
    # no client-side limit: the client only learns from the 429s
    job = extraction_job(tmp_path, server, 24, {"max_attempts": 12})
    assert main(["submit", str(job), "--backend", "local"]) == 0
    assert stats(server)["throttled_posts"] > 0
    log = httpx.get(f"{server.url}/log").json()
    posts: dict[str, list[dict]] = defaultdict(list)
    for entry in log:
        if entry["method"] == "POST":
            posts[entry["request_id"].split("-")[0]].append(entry)
    checked = 0
    for entries in posts.values():
        entries.sort(key=lambda e: e["t"])
        for before, after in itertools.pairwise(entries):
            if before["status"] == 429:
                assert after["t"] - before["t"] >= before["retry_after"] - 0.01
                checked += 1
    assert checked > 0


def test_faults_are_retried_and_every_item_ends_ok(emulator, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("EXTRACTION_API_KEY", KEY)
    server = emulator(rate_per_s=200, latency_s=0.02, poll_delay_s=0.05, fail_rate=0.2,
                      reset_rate=0.1, malformed_rate=0.1)
    job = extraction_job(tmp_path, server, 40, {"max_attempts": 10})
    assert main(["submit", str(job), "--backend", "local"]) == 0
    by_status = stats(server)["by_status"]
    assert by_status.get("POST 500", 0) + by_status.get("POST 503", 0) > 0
    assert by_status.get("POST 0", 0) > 0  # resets
    rows = read_rows(load_spec(job).run_dir, "train").to_pylist()
    assert {r["status"] for r in rows} == {"ok"} and len(rows) == 40
    assert max(r["attempts"] for r in rows) > 1


def test_failed_operations_and_exhausted_retries_become_error_rows(emulator, tmp_path,
                                                                   monkeypatch) -> None:
    monkeypatch.setenv("EXTRACTION_API_KEY", KEY)
    server = emulator(rate_per_s=200, latency_s=0.02, poll_delay_s=0.05, failed_op_rate=0.5)
    job = extraction_job(tmp_path, server, 30, {})
    assert main(["submit", str(job), "--backend", "local"]) == 1  # finished, errors remain
    spec = load_spec(job)
    rows = read_rows(spec.run_dir, "train").to_pylist()
    errors = [r for r in rows if r["status"] == "error"]
    assert errors and all(r["error"].startswith("InvalidContent:") for r in errors)
    assert layout.success_path(layout.shard_dir(spec.run_dir, "train", 0)).exists()

    down = emulator(rate_per_s=200, latency_s=0.02, fail_rate=1.0)
    (tmp_path / "second").mkdir()
    job2 = extraction_job(tmp_path / "second", down, 5, {"max_attempts": 2})
    assert main(["submit", str(job2), "--backend", "local"]) == 1
    rows = read_rows(load_spec(job2).run_dir, "train").to_pylist()
    assert len(rows) == 5 and all(r["status"] == "error" and r["attempts"] == 2 for r in rows)
    assert all("HTTP 50" in r["error"] for r in rows)


def test_wrong_key_is_not_retried_and_no_key_reaches_disk(emulator, tmp_path,
                                                          monkeypatch) -> None:
    wrong = "wrong-key-b7e1d3f0a9"
    monkeypatch.setenv("EXTRACTION_API_KEY", wrong)
    server = emulator(rate_per_s=200, latency_s=0.02)
    job = extraction_job(tmp_path, server, 5, {})
    assert main(["submit", str(job), "--backend", "local"]) == 1
    rows = read_rows(load_spec(job).run_dir, "train").to_pylist()
    assert all(r["status"] == "error" and r["attempts"] == 1 and "HTTP 401" in r["error"]
               for r in rows)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert wrong.encode() not in path.read_bytes(), path


def test_missing_key_is_a_clear_error(emulator, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("EXTRACTION_API_KEY", raising=False)
    server = emulator()
    job = extraction_job(tmp_path, server, 2, {})
    assert main(["plan", str(job)]) == 0
    assert main(["run-task", str(job), "--split", "train", "--shard", "0"]) == 2


def test_three_tasks_share_one_job_wide_limit(emulator, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("EXTRACTION_API_KEY", KEY)
    limit = 12.0
    server = emulator(rate_per_s=limit, latency_s=0.05, poll_delay_s=0.2, retry_after_s=1)
    job = extraction_job(tmp_path, server, 150, {"rate_limit_per_s": limit,
                                                 "concurrency": 16},
                         slurm={"max_concurrent": 3}, splits=3)
    assert main(["plan", str(job)]) == 0
    plan = json.loads((tmp_path / "run" / "plan.json").read_text())
    assert len(plan["splits"]["train"]["shards"]) == 3
    assert main(["submit", str(job), "--backend", "local"]) == 0
    result = stats(server)
    assert result["accepted"] == 150
    # the emulator's own bucket holds 1 s of burst; the job stayed at the limit...
    assert result["accept_rate_per_s"] <= limit * 1.1
    # ...and almost never tripped it
    assert result["throttled_posts"] <= 0.05 * result["accepted"]

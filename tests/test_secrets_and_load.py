"""The API key never reaches disk; huge items are per-item errors; 50,000 items at scale."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from helpers import merged_ids, read_rows
from shardrun import extraction, layout
from shardrun.cli import main
from shardrun.emulator import EmulatorConfig, start_in_thread
from shardrun.spec import load_spec
from test_extraction_emulator import extraction_job


@pytest.fixture
def key(monkeypatch) -> str:
    value = f"SHARDRUN-TEST-SECRET-{uuid.uuid4().hex}"
    monkeypatch.setenv("EXTRACTION_API_KEY", value)
    return value


def files_containing(root: Path, needle: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


def test_key_is_nowhere_on_disk_even_when_the_service_echoes_it(tmp_path, key, capsys) -> None:
    server = start_in_thread(EmulatorConfig(rate_per_s=500, latency_s=0.01, poll_delay_s=0.02,
                                            fail_rate=0.3, leak_key_in_errors=True,
                                            api_key=key, seed=11))
    try:
        job = extraction_job(tmp_path, server, 40, {"max_attempts": 2})
        main(["submit", str(job), "--backend", "local"])
        assert main(["submit", str(job), "--backend", "slurm", "--dry-run"]) == 0
        scripts = capsys.readouterr().out
    finally:
        server.shutdown()
        server.server_close()
    rows = read_rows(load_spec(job).run_dir, "train").to_pylist()
    leaked = [r for r in rows if r["error"] and "[REDACTED]" in r["error"]]
    assert leaked, "the service echoed the key in some errors: they must be stored redacted"
    assert files_containing(tmp_path, key) == []  # plan, parts, logs, _SUCCESS, merged...
    assert key not in scripts and "#SBATCH" in scripts


def test_huge_items_are_per_item_errors(tmp_path, key, monkeypatch) -> None:
    server = start_in_thread(EmulatorConfig(rate_per_s=500, latency_s=0.01, poll_delay_s=0.02,
                                            max_body_bytes=200_000, api_key=key))
    try:
        job = extraction_job(tmp_path, server, 6, {})
        (tmp_path / "docs" / "doc-0001.pdf").write_bytes(b"%PDF" + b"x" * 300_000)  # > 413
        monkeypatch.setattr(extraction, "MAX_UPLOAD_BYTES", 1_000_000)
        (tmp_path / "docs" / "doc-0002.pdf").write_bytes(b"%PDF" + b"x" * 1_100_000)
        assert main(["plan", str(job)]) == 0
        assert main(["run-task", str(job), "--split", "train", "--shard", "0"]) == 1
    finally:
        server.shutdown()
        server.server_close()
    rows = {r["item_id"]: r for r in read_rows(load_spec(job).run_dir, "train").to_pylist()}
    assert "HTTP 413 InvalidContentLength" in rows["docs/doc-0001.pdf"]["error"]
    assert rows["docs/doc-0001.pdf"]["attempts"] == 1  # not retried
    assert "upload limit" in rows["docs/doc-0002.pdf"]["error"]
    assert sum(r["status"] == "ok" for r in rows.values()) == 4


def test_fifty_thousand_items_in_64_shards(make_job, capsys) -> None:
    job = make_job({"train": 50_000}, {
        "processor": {"concurrency": 16}, "checkpoint": {"every_items": 100},
        "slurm": {"max_concurrent": 8},
        "planning": {"est_seconds_per_item": 300 * 16 / 782.5, "target_fraction": 0.5},
    })
    assert main(["plan", str(job)]) == 0
    spec = load_spec(job)
    plan = json.loads(layout.plan_path(spec.run_dir).read_text())
    assert len(plan["splits"]["train"]["shards"]) == 64
    assert main(["submit", str(job), "--backend", "local"]) == 0
    assert main(["merge", str(job)]) == 0
    ids = merged_ids(spec.run_dir, "train")
    assert len(ids) == 50_000 == len(set(ids))
    growth, peaks = [], []
    for success in (spec.run_dir / "shards" / "train").glob("*/_SUCCESS.json"):
        stats = json.loads(success.read_text())["stats"]
        growth.append(stats["peak_rss_mib"] - stats["rss_start_mib"])
        peaks.append(stats["peak_rss_mib"])
    assert len(growth) == 64
    # ~780 items a task: what a task holds is one interval of rows, so RSS stays flat
    assert max(growth) < 40, growth
    print(f"\nload: 64 tasks, RSS growth during a task: max {max(growth):.1f} MiB, "
          f"median {sorted(growth)[32]:.1f} MiB; peak RSS of a task: max {max(peaks):.0f} MiB")

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))  # so `procs` imports in-process and in subprocesses


@pytest.fixture(autouse=True)
def _test_env(monkeypatch: pytest.MonkeyPatch) -> None:
    path = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    monkeypatch.setenv("PYTHONPATH", path)
    for name in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID",
                 "SLURM_RESTART_COUNT", "SHARDRUN_BACKEND", "SHARDRUN_JOB_END_TIME"):
        monkeypatch.delenv(name, raising=False)


def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


def write_job(root: Path, splits: dict[str, int], sections: dict[str, dict[str, Any]] | None = None,
              name: str = "t", id_prefix: str = "item") -> Path:
    """A job with .txt manifests of ``count`` ids per split; returns the spec path."""
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    for split, count in splits.items():
        ids = [f"{split}-{id_prefix}-{i:05d}" for i in range(count)]
        (data / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    merged: dict[str, dict[str, Any]] = {
        "processor": {"kind": "python", "function": "procs:process", "concurrency": 4},
        "checkpoint": {"every_items": 100, "every_seconds": 60},
        "slurm": {"time": "10:00", "signal_grace_s": 30, "max_concurrent": 4},
        "planning": {"est_seconds_per_item": 0.01, "target_fraction": 0.5},
    }
    for key, values in (sections or {}).items():
        merged.setdefault(key, {}).update(values)
    lines = [f"name = {_toml_value(name)}", 'run_dir = "run"', "", "[splits]"]
    lines += [f'{s} = "data/{s}.txt"' for s in splits]
    for key, values in merged.items():
        lines += ["", f"[{key}]"] + [f"{k} = {_toml_value(v)}" for k, v in values.items()]
    spec = root / "job.toml"
    spec.write_text("\n".join(lines) + "\n")
    return spec


@pytest.fixture
def make_job(tmp_path: Path) -> Callable[..., Path]:
    def factory(splits: dict[str, int], sections: dict[str, dict[str, Any]] | None = None,
                **kwargs: Any) -> Path:
        return write_job(tmp_path, splits, sections, **kwargs)

    return factory


def slurm_unavailable_reason() -> str | None:
    import shutil
    import subprocess

    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "SLURM is not installed (run scripts/slurm-local-cluster.sh start as root)"
    try:
        done = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True,
                              timeout=15, check=False)
    except subprocess.TimeoutExpired:
        return "the SLURM controller does not answer (sinfo timed out)"
    if done.returncode != 0:
        return f"the SLURM controller does not answer: {done.stderr.strip()}"
    if not any(s.startswith(("idle", "mix", "alloc")) for s in done.stdout.split()):
        return f"no usable SLURM node (sinfo states: {done.stdout.split()})"
    return None


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    """The real local cluster; in CI (CI=true) its absence fails the run instead of skipping."""
    reason = slurm_unavailable_reason()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the SLURM tests, but {reason}")
    pytest.skip(f"SLURM cluster not available: {reason}")

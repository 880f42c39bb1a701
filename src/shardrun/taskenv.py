"""What a task learns from its environment (SLURM's variables, or the local backend's copy)."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class TaskEnv:
    backend: str  # "slurm" | "local" | "submitit" | "manual"
    job_id: str | None  # SLURM_JOB_ID: what `scontrol requeue` takes
    array_job_id: str | None
    array_task_id: int | None
    restart_count: int
    end_time: float | None  # epoch seconds when the wall clock runs out, if known

    @property
    def job_key(self) -> str | None:
        if self.array_job_id is not None and self.array_task_id is not None:
            return f"{self.array_job_id}_{self.array_task_id}"
        return self.job_id

    @property
    def worker(self) -> str:
        if self.job_key is not None:
            return f"{self.backend}:{self.job_key}"
        return f"manual:{socket.gethostname()}:{os.getpid()}"


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def task_env(environ: Mapping[str, str] | None = None) -> TaskEnv:
    env = os.environ if environ is None else environ
    job_id = env.get("SLURM_JOB_ID") or None
    backend = env.get("SHARDRUN_BACKEND") or ("slurm" if job_id else "manual")
    end = env.get("SHARDRUN_JOB_END_TIME") or env.get("SLURM_JOB_END_TIME")
    return TaskEnv(
        backend=backend,
        job_id=job_id,
        array_job_id=env.get("SLURM_ARRAY_JOB_ID") or None,
        array_task_id=_int(env.get("SLURM_ARRAY_TASK_ID")),
        restart_count=_int(env.get("SLURM_RESTART_COUNT")) or 0,
        end_time=float(end) if end and end.replace(".", "", 1).isdigit() else None,
    )

"""The local backend: a split's array tasks as subprocesses, behaving like SLURM would.

Each task gets SLURM's variables (SLURM_ARRAY_JOB_ID, SLURM_ARRAY_TASK_ID, SLURM_RESTART_COUNT,
...), at most ``max_concurrent`` run at once, the configured signal comes at
``time - signal_grace_s`` and SIGKILL at ``time``, and a task that ends without its
_SUCCESS.json is restarted (as the task's own requeue would) up to ``max_restarts``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .. import layout
from ..events import EventLog, events_path
from ..spec import JobSpec
from ..submissions import append_submission, array_spec, read_submissions

POLL_S = 0.2


@dataclass
class LocalTask:
    split: str
    shard: int
    array_job_id: int
    restart: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None
    started: float = 0.0
    signalled: bool = False
    killed: bool = False


@dataclass
class LocalReport:
    events: list[dict[str, Any]] = field(default_factory=list)
    completed: list[tuple[str, int]] = field(default_factory=list)
    failed: list[tuple[str, int]] = field(default_factory=list)

    def count(self, kind: str) -> int:
        return sum(e["event"] == kind for e in self.events)


def next_job_id(run_dir: Path) -> int:
    ids = [int(r["job_id"]) for r in read_submissions(run_dir)
           if str(r.get("job_id", "")).isdigit()]
    return max(ids, default=1000) + 1


def task_environment(spec: JobSpec, task: LocalTask, start: float) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "SHARDRUN_BACKEND": "local",
        "SLURM_JOB_ID": f"{task.array_job_id}{task.shard:04d}",
        "SLURM_ARRAY_JOB_ID": str(task.array_job_id),
        "SLURM_ARRAY_TASK_ID": str(task.shard),
        "SLURM_RESTART_COUNT": str(task.restart),
        "SLURM_JOB_NAME": f"{spec.name}-{task.split}",
        "SHARDRUN_JOB_END_TIME": f"{start + spec.slurm.time_s:.3f}",
    })
    return env


class LocalBackend:
    def __init__(self, spec: JobSpec, on_tick: Callable[[], None] | None = None,
                 retry_errors: bool = False) -> None:
        self.spec = spec
        self.on_tick = on_tick
        self.retry_errors = retry_errors
        self.report = LocalReport()

    def _event(self, task: LocalTask, event: str, **extra: Any) -> None:
        self.report.events.append({"time": time.time(), "event": event, "split": task.split,
                                   "shard": task.shard, "restart": task.restart, **extra})
        if event in ("signal", "timeout-kill"):  # what the task itself cannot record
            EventLog(events_path(self.spec.run_dir, task.split, task.shard),
                     restart=task.restart).emit(event, **extra)

    def _start(self, task: LocalTask) -> None:
        log_dir = layout.log_dir(self.spec.run_dir, task.split)
        log_dir.mkdir(parents=True, exist_ok=True)
        # Append mode, like sbatch --open-mode=append: a restart keeps the earlier run's log.
        task.log = (log_dir / f"{task.array_job_id}_{task.shard}.log").open("ab")
        task.log.write(f"=== local run {task.restart} of {task.split}/{task.shard:05d} ===\n"
                       .encode())
        task.log.flush()
        task.started = time.time()
        task.signalled = task.killed = False
        command = [sys.executable, "-m", "shardrun", "run-task", str(self.spec.path),
                   "--split", task.split, *(["--retry-errors"] if self.retry_errors else [])]
        task.proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=task.log, stderr=subprocess.STDOUT,
            env=task_environment(self.spec, task, task.started), start_new_session=True,
        )
        self._event(task, "start", pid=task.proc.pid)

    def _enforce_wall_clock(self, task: LocalTask, now: float) -> None:
        assert task.proc is not None
        slurm = self.spec.slurm
        if not task.signalled and now >= task.started + slurm.time_s - slurm.signal_grace_s:
            task.signalled = True
            task.proc.send_signal(getattr(signal, f"SIG{slurm.signal_name}"))
            self._event(task, "signal", signal=slurm.signal_name)
        if not task.killed and now >= task.started + slurm.time_s:
            task.killed = True
            task.proc.kill()
            self._event(task, "timeout-kill")

    def _finished(self, task: LocalTask, queue: deque[LocalTask]) -> None:
        assert task.proc is not None and task.log is not None
        task.log.close()
        code = task.proc.returncode
        shard_path = layout.shard_dir(self.spec.run_dir, task.split, task.shard)
        if layout.success_path(shard_path).exists():
            self._event(task, "complete", exit_code=code)
            self.report.completed.append((task.split, task.shard))
        elif task.restart < self.spec.slurm.max_restarts:
            self._event(task, "requeue", exit_code=code)
            queue.appendleft(LocalTask(task.split, task.shard, task.array_job_id,
                                       task.restart + 1))
        else:
            self._event(task, "failed", exit_code=code)
            self.report.failed.append((task.split, task.shard))

    def run(self, selection: dict[str, list[int]]) -> LocalReport:
        """Run the selected shards of each split as local arrays until all have ended."""
        queue: deque[LocalTask] = deque()
        job_id = next_job_id(self.spec.run_dir)
        for split, shards in selection.items():
            if not shards:
                continue
            append_submission(self.spec.run_dir, {
                "backend": "local", "split": split, "job_id": str(job_id),
                "array": array_spec(shards, self.spec.slurm.max_concurrent),
                "indices": sorted(shards),
            })
            queue.extend(LocalTask(split, k, job_id) for k in sorted(shards))
            job_id += 1
        running: list[LocalTask] = []
        try:
            while queue or running:
                while queue and len(running) < self.spec.slurm.max_concurrent:
                    task = queue.popleft()
                    self._start(task)
                    running.append(task)
                time.sleep(POLL_S)
                now = time.time()
                for task in list(running):
                    assert task.proc is not None
                    if task.proc.poll() is None:
                        self._enforce_wall_clock(task, now)
                    else:
                        running.remove(task)
                        self._finished(task, queue)
                if self.on_tick is not None:
                    self.on_tick()
        finally:
            self._stop_all(running)
        return self.report

    def _stop_all(self, running: list[LocalTask]) -> None:
        """On an interrupt, let running tasks flush (SIGTERM), then kill what remains."""
        for task in running:
            if task.proc is not None and task.proc.poll() is None:
                task.proc.terminate()
        deadline = time.time() + self.spec.slurm.signal_grace_s
        for task in running:
            if task.proc is None:
                continue
            try:
                task.proc.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                task.proc.kill()
                task.proc.wait()
            if task.log is not None and not task.log.closed:
                task.log.close()

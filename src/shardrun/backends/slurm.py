"""The SLURM backend: one sbatch per array, batched squeue polls, sacct when it answers."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import SchedulerError
from ..planfile import Plan
from ..sbatch import ArrayChunk, chunk_shards, render_array
from ..scheduler import Scheduler
from ..slurm_parse import AccountingEntry, QueueEntry
from ..spec import JobSpec
from ..submissions import append_submission, array_spec, read_submissions
from ..taskenv import TaskEnv

log = logging.getLogger("shardrun")

POLL_START_S, POLL_MAX_S, POLL_FACTOR = 3.0, 60.0, 1.5

# squeue states in which a shard is still the scheduler's business
QUEUED_STATES = {"PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING",
                 "COMPLETING", "SUSPENDED", "RESIZING", "SIGNALING", "STAGE_OUT"}
# sacct's final states, as status shows them
FINAL_STATES = {"FAILED": "failed", "TIMEOUT": "timeout", "OUT_OF_MEMORY": "oom",
                "CANCELLED": "cancelled", "NODE_FAIL": "node-fail", "PREEMPTED": "preempted",
                "BOOT_FAIL": "failed", "DEADLINE": "timeout", "COMPLETED": "completed"}


@dataclass(frozen=True)
class Submitted:
    split: str
    job_id: str
    chunk: ArrayChunk


def queue_state(entry: QueueEntry) -> str:
    if entry.state == "PENDING" and entry.reason in ("BeginTime", "JobHeldAdmin"):
        return "requeued"  # SLURM holds a requeued job back (EligibleTime) before restart
    return entry.state.lower()


@dataclass
class JobIndex:
    """Which (split, shard) each array task of the run's submissions is (latest wins)."""

    by_task: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)
    job_ids: list[str] = field(default_factory=list)

    @classmethod
    def from_records(cls, records: list[dict[str, Any]]) -> JobIndex:
        index = cls()
        for record in records:
            if record.get("backend") not in ("slurm", "submitit"):
                continue
            job_id, offset = str(record["job_id"]), int(record.get("offset", 0))
            index.job_ids.append(job_id)
            tasks = [int(t) for t in record["indices"]]
            # submitit arrays list their shards; sbatch arrays are offset + task id
            shards = record.get("shards") or [offset + t for t in tasks]
            for task, shard in zip(tasks, shards, strict=True):
                index.by_task[(job_id, task)] = (record["split"], int(shard))
        return index

    def states(self, queue: list[QueueEntry],
               accounting: list[AccountingEntry]) -> dict[tuple[str, int], str]:
        """Scheduler state per shard; the queue outranks accounting, later jobs earlier ones."""
        order = {job: n for n, job in enumerate(self.job_ids)}
        states: dict[tuple[str, int], tuple[int, int, str]] = {}

        def put(job: str, task: int | None, rank: int, state: str) -> None:
            shard = self.by_task.get((job, task if task is not None else 0))
            if shard is None:
                return
            key = (order.get(job, -1), rank)
            if shard not in states or key >= states[shard][:2]:
                states[shard] = (*key, state)

        for entry in accounting:
            if entry.state in FINAL_STATES:
                put(entry.array_job_id, entry.task_id, 0, FINAL_STATES[entry.state])
        for q in queue:
            if q.state in QUEUED_STATES:
                put(q.array_job_id, q.task_id, 1, queue_state(q))
        return {shard: value[2] for shard, value in states.items()}


class SlurmBackend:
    def __init__(self, spec: JobSpec, scheduler: Scheduler | None = None,
                 python: str = sys.executable) -> None:
        self.spec = spec
        self.scheduler = scheduler or Scheduler()
        self.python = python

    def scripts(self, selection: dict[str, list[int]], max_array_size: int,
                retry_errors: bool = False) -> list[tuple[str, ArrayChunk, str]]:
        rendered = []
        for split, shards in selection.items():
            for chunk in chunk_shards(shards, max_array_size):
                script = render_array(self.spec, split, chunk, self.python, retry_errors)
                rendered.append((split, chunk, script))
        return rendered

    def submit(self, selection: dict[str, list[int]],
               retry_errors: bool = False) -> list[Submitted]:
        scripts = self.scripts(selection, self.scheduler.max_array_size(), retry_errors)
        submitted = []
        for split, chunk, script in scripts:
            (self.spec.run_dir / "logs" / split).mkdir(parents=True, exist_ok=True)
            job_id = self.scheduler.sbatch(script)
            append_submission(self.spec.run_dir, {
                "backend": "slurm", "split": split, "job_id": job_id, "offset": chunk.offset,
                "indices": list(chunk.indices),
                "array": array_spec(list(chunk.indices), self.spec.slurm.max_concurrent),
            })
            log.info("submitted %s: job %s, array %s (shards %s..%s)", split, job_id,
                     array_spec(list(chunk.indices), self.spec.slurm.max_concurrent),
                     chunk.shards[0], chunk.shards[-1])
            submitted.append(Submitted(split, job_id, chunk))
        return submitted

    def index(self) -> JobIndex:
        return JobIndex.from_records(read_submissions(self.spec.run_dir))

    def states(self, with_sacct: bool = True) -> dict[tuple[str, int], str]:
        index = self.index()
        queue = self.scheduler.squeue(index.job_ids)
        accounting: list[AccountingEntry] = []
        if with_sacct:
            try:
                accounting = self.scheduler.sacct(index.job_ids)
            except SchedulerError as exc:
                log.info("sacct did not answer; states from squeue only (%s)", exc)
        return index.states(queue, accounting)

    def wait(self, on_poll: Callable[[], None] | None = None,
             sleep: Callable[[float], None] = time.sleep) -> None:
        """Poll (one squeue per poll, backing off to 60 s) until none of the run's jobs is
        queued or running on two polls in a row: a task that requeues itself can be briefly
        absent from squeue."""
        index = self.index()
        delay = POLL_START_S
        empty_polls = 0
        while True:
            queued = [q for q in self.scheduler.squeue(index.job_ids) if q.state in QUEUED_STATES]
            if on_poll is not None:
                on_poll()
            empty_polls = 0 if queued else empty_polls + 1
            if empty_polls >= 2:
                return
            sleep(POLL_START_S if empty_polls else delay)
            delay = min(POLL_MAX_S, delay * POLL_FACTOR)


def plan_selection(plan: Plan) -> dict[str, list[int]]:
    return {name: list(range(len(s.shards))) for name, s in plan.splits.items() if s.shards}


def slurm_task_hooks(env: TaskEnv,
                     scheduler: Scheduler) -> tuple[TaskEnv, Callable[[TaskEnv], str]]:
    """In a SLURM task: learn the job's end time (the backstop) and how to requeue itself."""
    if env.end_time is None and env.job_id is not None:
        try:
            env = replace(env, end_time=scheduler.end_time(env.job_id))
        except SchedulerError as exc:
            log.warning("no backstop deadline: cannot read the job's end time (%s)", exc)

    def requeue(task: TaskEnv) -> str:
        target = task.job_key or task.job_id
        assert target is not None
        scheduler.requeue(target)
        return f"requeued {target} via scontrol (this was restart {task.restart_count})"

    return env, requeue

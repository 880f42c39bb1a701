"""What submit, status and requeue do, whichever backend runs the tasks."""

from __future__ import annotations

from collections.abc import Mapping

from .backends.local import LocalBackend, LocalReport
from .backends.slurm import QUEUED_STATES, SlurmBackend
from .console import RunProgress, err
from .errors import UsageError
from .planfile import Plan
from .scheduler import Scheduler
from .spec import JobSpec
from .status import ShardStatus, run_status
from .submissions import read_submissions

BACKENDS = ("auto", "local", "slurm", "submitit")
QUEUED = {state.lower() for state in QUEUED_STATES} | {"requeued"}


def choose_backend(requested: str | None, spec: JobSpec) -> str:
    """auto: the last submission's backend, else slurm where sbatch exists, else local."""
    if requested not in (None, "auto"):
        return str(requested)
    last = read_submissions(spec.run_dir)
    if last:
        return str(last[-1]["backend"])
    return "slurm" if Scheduler.available() else "local"


def scheduler_states(spec: JobSpec,
                     scheduler: Scheduler | None = None) -> Mapping[tuple[str, int], str]:
    """Per-shard scheduler states for runs submitted to SLURM (empty otherwise)."""
    uses_slurm = any(r.get("backend") in ("slurm", "submitit")
                     for r in read_submissions(spec.run_dir))
    if not uses_slurm or (scheduler is None and not Scheduler.available()):
        return {}
    return SlurmBackend(spec, scheduler).states()


def shard_rows(spec: JobSpec, plan: Plan,
               scheduler: Scheduler | None = None) -> list[ShardStatus]:
    return run_status(spec.run_dir, plan, scheduler_states(spec, scheduler))[1]


def unfinished(rows: list[ShardStatus], errors: bool) -> dict[str, list[int]]:
    """Shards to (re)submit: not done and not queued/running; with ``errors`` also done
    shards whose items ended in error (pure)."""
    selection: dict[str, list[int]] = {}
    for row in rows:
        waiting = row.state in QUEUED or row.state == "running"
        todo = not row.state.startswith("done") and not waiting
        if todo or (errors and row.state == "done-with-errors"):
            selection.setdefault(row.split, []).append(row.shard)
    return selection


def run_locally(spec: JobSpec, plan: Plan, selection: dict[str, list[int]],
                retry_errors: bool = False) -> LocalReport:
    def count_done() -> dict[str, int]:
        splits, _ = run_status(spec.run_dir, plan)
        return {s.split: s.done + s.errors for s in splits}

    totals = {name: s.items for name, s in plan.splits.items() if selection.get(name)}
    with RunProgress(totals, count_done) as progress:
        report = LocalBackend(spec, on_tick=progress.tick, retry_errors=retry_errors).run(
            selection)
    err.print(f"local backend: {len(report.completed)} task(s) complete, "
              f"{report.count('signal')} signalled, {report.count('requeue')} restarted, "
              f"{len(report.failed)} failed")
    return report


def dispatch(spec: JobSpec, plan: Plan, selection: dict[str, list[int]], backend: str,
             retry_errors: bool = False, wait: bool = False,
             scheduler: Scheduler | None = None) -> None:
    if backend == "local":
        run_locally(spec, plan, selection, retry_errors)
        return
    if backend == "slurm":
        slurm = SlurmBackend(spec, scheduler)
        for sub in slurm.submit(selection, retry_errors):
            err.print(f"submitted {sub.split}: job {sub.job_id} (shards "
                      f"{sub.chunk.shards[0]}..{sub.chunk.shards[-1]}, "
                      f"{len(sub.chunk.indices)} task(s))")
        if wait:
            slurm.wait(on_poll=None)
        return
    if backend == "submitit":
        from .backends.submitit_backend import submit_with_submitit

        submit_with_submitit(spec, selection, retry_errors, wait)
        return
    raise UsageError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")

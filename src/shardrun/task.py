"""`shardrun run-task`: one array task from plan to _SUCCESS.json (the effects around runner)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from . import layout
from .atomic import atomic_write_json, remove_stale_temps
from .checkpoint import Checkpointer
from .errors import UsageError
from .events import EventLog, events_path
from .lease import Holder, Lease, LeaseHeldError
from .manifest import Manifest
from .parts import LeaseLostError, PartWriter, ShardScan, scan_shard
from .planfile import read_planned_manifest, require_plan
from .processor import make_processor
from .progress import log_progress
from .runner import RunSettings, RunStats, StopSignal, run_items
from .spec import JobSpec
from .taskenv import TaskEnv

log = logging.getLogger("shardrun")

EXIT_DONE, EXIT_INCOMPLETE = 0, 1
BACKSTOP_FRACTION = 0.8  # the backstop fires at end - 0.8 x grace
DRAIN_FRACTION = 0.4  # in-flight items get 0.4 x grace to finish after a stop


@dataclass(frozen=True)
class TaskOutcome:
    exit_code: int
    state: str  # "complete" | "already-complete" | "stopped" | "held"
    message: str
    stats: RunStats | None = None


def select_todo(ids: pa.Array, scan: ShardScan, max_attempts: int) -> pa.Array:
    """Row positions of the shard still to do: not ok, and attempts left (pure)."""
    not_ok = pc.invert(pc.is_in(ids, value_set=scan.ok_ids))
    positions = pc.indices_nonzero(not_ok)
    if not scan.error_attempts:
        return positions
    exhausted = {i for i, a in scan.error_attempts.items() if a >= max_attempts}
    if not exhausted:
        return positions
    keep = pc.invert(pc.is_in(pc.take(ids, positions), value_set=pa.array(list(exhausted))))
    return pc.filter(positions, keep)


def _install_stop_handlers(stop: StopSignal, signame: str, env: TaskEnv,
                           grace_s: float) -> None:
    loop = asyncio.get_running_loop()
    # The configured signal means "the wall clock is near": stop and requeue. A plain SIGTERM
    # is scancel (the user wants it stopped) or preemption (SLURM requeues by itself): stop
    # and flush, but do not requeue, or a cancelled job would come back.
    wall_clock = {getattr(signal, f"SIG{signame}")}
    if env.backend == "submitit":
        wall_clock.add(signal.SIGUSR2)  # submitit's own timeout signal
    for sig in wall_clock | {signal.SIGTERM}:
        loop.add_signal_handler(sig, stop.request, f"received {sig.name}", sig in wall_clock)
    if env.end_time is not None:
        # Backstop: SLURM's signal can come ~30 s late or never. Stop a little after it was
        # due (end - 0.8 x grace) so the drain (0.4 x grace) still ends well before the kill.
        delay = max(0.0, env.end_time - BACKSTOP_FRACTION * grace_s - time.time())
        loop.call_later(delay, stop.request, "backstop deadline (job end time - grace)")


def run_task(spec: JobSpec, split: str, shard: int, env: TaskEnv, retry_errors: bool = False,
             requeue: Callable[[TaskEnv], str] | None = None) -> TaskOutcome:
    plan = require_plan(spec.run_dir)
    split_plan = plan.split(split)
    start, stop_at = split_plan.bounds(shard)
    manifest = read_planned_manifest(split_plan)

    shard_path = layout.shard_dir(spec.run_dir, split, shard)
    lease = Lease(shard_path, Holder(env.worker, env.job_key, env.restart_count))
    try:
        shard_path.mkdir(parents=True, exist_ok=True)
        lease.acquire()
    except LeaseHeldError as exc:
        log.error("%s", exc)
        return TaskOutcome(EXIT_INCOMPLETE, "held", str(exc))
    except OSError as exc:
        message = f"{split}/{shard:05d}: cannot start in {shard_path}: {exc}"
        log.error(message)
        return TaskOutcome(EXIT_INCOMPLETE, "write-failed", message)
    try:
        for stale in remove_stale_temps(shard_path):
            log.info("removed %s, left by a writer that was killed mid-write", stale.name)
        shards_in_run = sum(len(s.shards) for s in plan.splits.values())
        return _run_leased(spec, split, shard, env, retry_errors, requeue, lease,
                           manifest, start, stop_at,
                           expected_tasks=min(spec.slurm.max_concurrent, shards_in_run))
    except (OSError, LeaseLostError) as exc:
        # Disk full, read-only or vanished run directory, lease taken over: the parts already
        # written are intact; stop here and say why rather than die with a traceback.
        parts = len(layout.list_parts(shard_path))
        message = (f"{split}/{shard:05d} stopped: cannot write its checkpoint: {exc}; the "
                   f"{parts} part(s) already written are intact and a rerun resumes from them")
        log.error(message)
        return TaskOutcome(EXIT_INCOMPLETE, "write-failed", message)
    finally:
        try:
            lease.release()
        except OSError as exc:
            log.warning("could not release the lease: %s", exc)


def _run_leased(spec: JobSpec, split: str, shard: int, env: TaskEnv, retry_errors: bool,
                requeue: Callable[[TaskEnv], str] | None, lease: Lease,
                manifest: Manifest, start: int, stop_at: int,
                expected_tasks: int) -> TaskOutcome:
    shard_path = lease.path.parent
    success = layout.success_path(shard_path)
    if success.exists() and not retry_errors:
        message = f"{split}/{shard:05d} already complete (_SUCCESS.json); nothing to do"
        log.info(message)
        return TaskOutcome(EXIT_DONE, "already-complete", message)
    scan = scan_shard(shard_path)
    ids = manifest.ids.slice(start, stop_at - start).combine_chunks()
    items = manifest.items(start, stop_at)
    todo = select_todo(ids, scan, spec.processor.max_attempts).to_pylist()
    if success.exists() and todo:
        success.unlink()  # the shard is being redone (requeue --errors)
    events = EventLog(events_path(spec.run_dir, split, shard), worker=env.worker,
                      restart=env.restart_count)
    events.emit("start", todo=len(todo), planned=stop_at - start, end_time=env.end_time,
                time_s=spec.slurm.time_s)
    log.info("%s/%05d: %d planned, %d done or out of attempts, %d to do (restart %d, worker %s)",
             split, shard, stop_at - start, stop_at - start - len(todo), len(todo),
             env.restart_count,
             env.worker)
    writer = PartWriter(shard_path, scan.next_seq, still_owner=lease.still_held,
                        on_written=lambda seq, rows: events.emit("part", seq=seq, rows=rows))
    checkpointer = Checkpointer(writer, spec.checkpoint.every_items,
                                spec.checkpoint.every_seconds, spec.processor.concurrency)
    settings = RunSettings(
        split=split, shard=shard, worker=env.worker, concurrency=spec.processor.concurrency,
        drain_s=spec.slurm.signal_grace_s * DRAIN_FRACTION,
    )
    total = len(todo)

    async def main() -> RunStats:
        stop = StopSignal()
        _install_stop_handlers(stop, spec.slurm.signal_name, env, spec.slurm.signal_grace_s)
        processor = make_processor(spec.processor, spec.run_dir, expected_tasks)
        await processor.start()
        try:
            return await run_items(
                (items[i] for i in todo), scan.error_attempts, processor, checkpointer, stop,
                settings, heartbeat=lease.heartbeat,
                progress=lambda stats: log_progress(split, shard, stats, total),
            )
        finally:
            await processor.close()

    stats = asyncio.run(main())
    log_progress(split, shard, stats, total)
    if stats.processed < total:
        message = (f"{split}/{shard:05d} stopped ({stats.stop_reason}) with "
                   f"{total - stats.processed} item(s) left; "
                   f"{writer.parts_written} part(s) written")
        log.info(message)
        events.emit("stop", reason=stats.stop_reason, left=total - stats.processed)
        if requeue is not None and not stats.stop_wants_requeue:
            log.info("not requeueing: stopped by %s", stats.stop_reason)
        elif requeue is not None:
            if env.restart_count < spec.slurm.max_restarts:
                log.info(requeue(env))
                events.emit("requeue")
            else:
                log.error("not requeueing: restart %d reached max_restarts = %d",
                          env.restart_count, spec.slurm.max_restarts)
        return TaskOutcome(EXIT_INCOMPLETE, "stopped", message, stats)
    outcome = _finish(split, shard, env, shard_path, ids, scan, writer, stats)
    events.emit("complete", message=outcome.message)
    return outcome


def _finish(split: str, shard: int, env: TaskEnv, shard_path: Path, ids: pa.Array,
            scan: ShardScan, writer: PartWriter, stats: RunStats) -> TaskOutcome:
    # Counted from the scan at the start plus this run, not by reading every part again:
    # the items this run did were not ok before it, and the lease kept other writers out.
    ok = int(pc.sum(pc.is_in(ids, value_set=scan.ok_ids)).as_py() or 0) + stats.ok
    errors = len(ids) - ok
    parts = scan.parts + writer.parts_written
    record = {
        "split": split, "shard": shard, "items": len(ids), "ok": ok, "error": errors,
        "parts": parts, "worker": env.worker, "restart_count": env.restart_count,
        "finished_at": datetime.now(UTC).isoformat(), "stats": stats.summary(),
    }
    atomic_write_json(layout.success_path(shard_path), record, "success-before-rename")
    message = f"{split}/{shard:05d} complete: {ok} ok, {errors} error, {parts} part(s)"
    log.info(message)
    return TaskOutcome(EXIT_INCOMPLETE if errors else EXIT_DONE, "complete", message, stats)


def configure_task_logging(worker: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(
        f"%(asctime)s {worker} %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S"))
    root = logging.getLogger("shardrun")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def check_split(spec: JobSpec, split: str) -> None:
    if split not in spec.splits:
        raise UsageError(f"{spec.path}: no split {split!r}; splits: {', '.join(spec.splits)}")

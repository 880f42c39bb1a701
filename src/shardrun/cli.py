"""The `shardrun` command line: ``main(argv) -> int``; exit 0 done, 1 incomplete, 2 bad input."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__, layout
from .backends.slurm import SlurmBackend, plan_selection, slurm_task_hooks
from .console import err, out, status_tables
from .errors import SchedulerError, UsageError
from .merge import merge
from .planfile import Plan, ensure_plan, make_plan, read_manifests, require_plan
from .runops import BACKENDS, choose_backend, dispatch, scheduler_states, shard_rows, unfinished
from .scheduler import Scheduler
from .spec import JobSpec, load_spec
from .status import has_failures, run_status, status_json
from .task import EXIT_DONE, EXIT_INCOMPLETE, check_split, configure_task_logging, run_task
from .taskenv import task_env

EXIT_USAGE = 2
DEFAULT_MAX_ARRAY = 1001  # SLURM's default MaxArraySize, for dry runs off a cluster


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="shardrun",
        description="Run per-item batch work as SLURM job arrays that survive the wall clock: "
        "plan shards, submit arrays, checkpoint to Parquet, resume, requeue, merge.",
        epilog="Exit codes: 0 done; 1 finished but incomplete or failed items remain; "
        "2 usage or validation error (nothing created or submitted).",
    )
    parser.add_argument("--version", action="version", version=f"shardrun {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def job_command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("job", type=Path, help="the job spec (TOML)")
        return p

    p = job_command("plan", "Split each split into shards sized to finish inside the wall "
                    "clock; write plan.json and print items, shards, items/shard, est. hours.")
    p.add_argument("--force", action="store_true",
                   help="re-plan even though the manifests changed (old plan and shards are "
                   "moved to superseded/, not deleted)")

    p = job_command("submit", "Plan if needed, then submit one array per split.")
    p.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="where tasks run; auto (default): the run's last backend, else slurm "
                   "where sbatch exists, else local subprocesses")
    p.add_argument("--dry-run", action="store_true", help="show what would be submitted")
    p.add_argument("--wait", action="store_true",
                   help="wait until the arrays have ended (the local backend always waits)")

    p = job_command("run-task", "The body of one array task (normally started by the backend).")
    p.add_argument("--split", required=True)
    p.add_argument("--shard", type=int, default=None,
                   help="shard index (default: $SLURM_ARRAY_TASK_ID)")
    p.add_argument("--shard-offset", type=int, default=0,
                   help="added to $SLURM_ARRAY_TASK_ID (arrays split at MaxArraySize)")
    p.add_argument("--retry-errors", action="store_true",
                   help="also redo error items of a finished shard (attempts permitting)")

    p = job_command("status", "Per split and shard: done/total, errors, state, throughput, ETA.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--summary", action="store_true", help="splits only, no shard table")
    p.add_argument("--watch", action="store_true",
                   help="refresh in place (every --interval seconds) until Ctrl-C")
    p.add_argument("--interval", type=float, default=10.0,
                   help="seconds between refreshes with --watch (default 10, at least 2)")

    p = job_command("requeue", "Resubmit only unfinished shards (and with --errors, shards "
                    "whose items ended in error).")
    p.add_argument("--errors", action="store_true", help="also retry items in error")
    p.add_argument("--dry-run", action="store_true", help="show the shards, submit nothing")
    p.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="default: the backend of the run's last submission")

    p = job_command("merge", "Write merged/<split>.parquet with every planned item once.")
    p.add_argument("--split", action="append", dest="splits", help="only this split (repeatable)")
    p.add_argument("--allow-partial", action="store_true",
                   help="write even when items are missing (the manifest lists them)")

    p = job_command("report", "Write a self-contained HTML report (and a PNG) of the run: "
                    "timeline per shard, throughput against the rate limit, errors, status.")
    p.add_argument("--out", type=Path, default=None,
                   help="folder for report.html and report.png (default: <run_dir>/report)")

    p = sub.add_parser("serve-api", help="A local emulator of the extraction API (loopback).",
                       description="Serve the analyze-then-poll protocol on 127.0.0.1 with a "
                       "rate limit (429 + Retry-After past it), latency, poll delay and fault "
                       "injection; counters at /stats, recent requests at /log.")
    p.add_argument("--port", type=int, default=8089)
    p.add_argument("--rate", type=float, default=15.0, help="POSTs per second before 429")
    p.add_argument("--poll-rate", type=float, default=50.0, help="GETs per second before 429")
    p.add_argument("--latency", type=float, default=0.2, help="median seconds to accept")
    p.add_argument("--latency-sigma", type=float, default=0.3, help="lognormal spread")
    p.add_argument("--poll-delay", type=float, default=0.5, help="seconds an operation runs")
    p.add_argument("--fail-rate", type=float, default=0.0, help="fraction of POSTs -> 5xx")
    p.add_argument("--reset-rate", type=float, default=0.0, help="fraction reset")
    p.add_argument("--stall-rate", type=float, default=0.0, help="fraction that stall")
    p.add_argument("--stall-s", type=float, default=30.0)
    p.add_argument("--malformed-rate", type=float, default=0.0,
                   help="fraction of polls answered with broken JSON")
    p.add_argument("--failed-op-rate", type=float, default=0.0,
                   help="fraction of operations that end 'failed'")
    p.add_argument("--key-env", default=None,
                   help="require the key held in this environment variable")
    p.add_argument("--seed", type=int, default=None)

    p = sub.add_parser("demo", help="The whole life cycle on this machine, nothing to configure.",
                       description="Make a small dataset and job, run it on the local backend "
                       "with a wall clock short enough that tasks are signalled and resume, "
                       "merge, and report.")
    p.add_argument("--dir", type=Path, default=Path("shardrun-demo"),
                   help="where to put the demo (default: ./shardrun-demo)")
    return parser


def _print_plan(plan: Plan, action: str) -> None:
    sizing = plan.data["sizing"]
    out.print(f"plan {action}: {sizing['throughput_per_task']:.3f} items/s per task "
              f"({sizing['throughput_source']}), at most {sizing['max_items_per_shard']} "
              f"items per shard")
    for name, split in plan.data["splits"].items():
        if split["items"] == 0:
            out.print(f"  {name}: 0 items -> 0 shards (empty split: nothing to run)")
            continue
        out.print(f"  {name}: {split['items']} items -> {len(split['shards'])} shard(s) of "
                  f"<= {split['items_per_shard']} items, est. "
                  f"{split['est_hours_per_shard']:.2f} h/shard")


def cmd_plan(args: argparse.Namespace) -> int:
    spec = load_spec(args.job)
    outcome = ensure_plan(spec, force=args.force)
    _print_plan(outcome.plan, outcome.action)
    if outcome.superseded is not None:
        out.print(f"  the previous plan and shards were moved to {outcome.superseded}")
    return EXIT_DONE


def _show_status(spec: JobSpec, plan: Plan, scheduler: Scheduler | None = None) -> int:
    splits, shards = run_status(spec.run_dir, plan, scheduler_states(spec, scheduler))
    for table in status_tables(splits, shards, show_shards=len(shards) <= 40):
        out.print(table)
    return EXIT_INCOMPLETE if has_failures(splits) else EXIT_DONE


def cmd_submit(args: argparse.Namespace) -> int:
    spec = load_spec(args.job)
    backend = choose_backend(args.backend, spec)
    if args.dry_run:
        if not layout.plan_path(spec.run_dir).exists():
            plan = make_plan(spec, read_manifests(spec), [])  # shown, not written
            err.print("dry run: no plan yet; showing the plan `shardrun plan` would write")
        else:
            plan = require_plan(spec.run_dir)
        _print_plan(plan, "(dry run)")
        return _dry_run(spec, plan, plan_selection(plan), backend)
    outcome = ensure_plan(spec)
    _print_plan(outcome.plan, outcome.action)
    selection = unfinished(shard_rows(spec, outcome.plan), errors=False)
    if not selection:
        out.print("every shard is already done or queued; nothing submitted")
        return _show_status(spec, outcome.plan)
    dispatch(spec, outcome.plan, selection, backend, wait=args.wait)
    if backend == "local" or args.wait:
        return _show_status(spec, outcome.plan)
    return EXIT_DONE


def _dry_run(spec: JobSpec, plan: Plan, selection: dict[str, list[int]], backend: str,
             retry_errors: bool = False) -> int:
    if backend == "slurm":
        size = DEFAULT_MAX_ARRAY
        try:
            size = Scheduler().max_array_size() if Scheduler.available() else size
        except SchedulerError as exc:
            err.print(f"dry run: assuming MaxArraySize {size}: {exc}", markup=False)
        for split, chunk, script in SlurmBackend(spec).scripts(selection, size, retry_errors):
            out.print(f"# --- {split}: shards {chunk.shards[0]}..{chunk.shards[-1]} "
                      f"(MaxArraySize {size}) ---", markup=False)
            out.print(script, markup=False)
        return EXIT_DONE
    for name, shards in selection.items():
        out.print(f"would run {name}: shards {','.join(map(str, shards))} ({backend})")
    return EXIT_DONE


def cmd_run_task(args: argparse.Namespace) -> int:
    spec = load_spec(args.job)
    check_split(spec, args.split)
    env = task_env()
    if args.shard is not None:
        shard = args.shard
    elif env.array_task_id is not None:
        shard = args.shard_offset + env.array_task_id
    else:
        raise UsageError("run-task: no --shard and no $SLURM_ARRAY_TASK_ID")
    configure_task_logging(env.worker)
    requeue = None
    if env.backend in ("slurm", "submitit") and env.job_id is not None:
        env, requeue = slurm_task_hooks(env, Scheduler())
    return run_task(spec, args.split, shard, env, args.retry_errors, requeue).exit_code


def cmd_status(args: argparse.Namespace) -> int:
    spec = load_spec(args.job)
    plan = require_plan(spec.run_dir)
    if args.watch:
        from .watch import watch_status

        return watch_status(spec, plan, max(2.0, args.interval), not args.summary)
    splits, shards = run_status(spec.run_dir, plan, scheduler_states(spec))
    if args.json:
        out.print_json(json.dumps(status_json(splits, shards)))
    else:
        for table in status_tables(splits, shards, show_shards=not args.summary):
            out.print(table)
    return EXIT_INCOMPLETE if has_failures(splits) else EXIT_DONE


def cmd_requeue(args: argparse.Namespace) -> int:
    spec = load_spec(args.job)
    plan = require_plan(spec.run_dir)
    backend = choose_backend(args.backend, spec)
    selection = unfinished(shard_rows(spec, plan), args.errors)
    if not selection:
        out.print("nothing to requeue: every shard is done or queued" +
                  ("" if args.errors else " (use --errors to retry items in error)"))
        return EXIT_DONE
    for name, shards in selection.items():
        out.print(f"requeue {name}: shards {','.join(map(str, shards))}")
    if args.dry_run:
        return _dry_run(spec, plan, selection, backend, args.errors)
    dispatch(spec, plan, selection, backend, retry_errors=args.errors)
    return _show_status(spec, plan) if backend == "local" else EXIT_DONE


def cmd_merge(args: argparse.Namespace) -> int:
    spec = load_spec(args.job)
    plan = require_plan(spec.run_dir)
    for name in args.splits or []:
        plan.split(name)  # unknown split: exit 2 before anything is written
    code = EXIT_DONE
    for report in merge(spec.run_dir, plan, args.splits, args.allow_partial):
        if report.refused:
            shown = ", ".join(report.missing[:20])
            err.print(f"merge {report.split}: refused: {report.missing_count} of "
                      f"{report.planned} planned item(s) missing, e.g. {shown}. "
                      "Run `shardrun requeue`, or merge with --allow-partial.")
            code = EXIT_INCOMPLETE
            continue
        out.print(f"merge {report.split}: {report.written}/{report.planned} items "
                  f"({report.ok} ok, {report.error} error, {report.missing_count} missing, "
                  f"{report.duplicates_dropped} duplicate rows dropped) -> {report.path}")
        if report.error or report.missing_count:
            code = EXIT_INCOMPLETE
    return code


def cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report

    spec = load_spec(args.job)
    plan = require_plan(spec.run_dir)
    page, png = write_report(spec, plan, args.out or spec.run_dir / "report")
    out.print(f"report: {page}\npicture: {png}")
    return EXIT_DONE


def cmd_serve_api(args: argparse.Namespace) -> int:
    import os

    from .emulator import EmulatorConfig, EmulatorServer

    rates = {"--fail-rate": args.fail_rate, "--reset-rate": args.reset_rate,
             "--stall-rate": args.stall_rate, "--malformed-rate": args.malformed_rate,
             "--failed-op-rate": args.failed_op_rate}
    for flag, value in rates.items():
        if not 0 <= value <= 1:
            raise UsageError(f"serve-api {flag} = {value}: must be in [0, 1]")
    for flag, value in {"--rate": args.rate, "--poll-rate": args.poll_rate,
                        "--latency": args.latency}.items():
        if value <= 0:
            raise UsageError(f"serve-api {flag} = {value}: must be > 0")
    key = None
    if args.key_env is not None:
        key = os.environ.get(args.key_env)
        if not key:
            raise UsageError(f"serve-api --key-env {args.key_env}: variable not set")
    config = EmulatorConfig(
        rate_per_s=args.rate, poll_rate_per_s=args.poll_rate, latency_s=args.latency,
        latency_sigma=args.latency_sigma, poll_delay_s=args.poll_delay,
        fail_rate=args.fail_rate, reset_rate=args.reset_rate, stall_rate=args.stall_rate,
        stall_s=args.stall_s, malformed_rate=args.malformed_rate,
        failed_op_rate=args.failed_op_rate, api_key=key, seed=args.seed)
    try:
        server = EmulatorServer(config, args.port)
    except OSError as exc:
        raise UsageError(f"serve-api --port {args.port}: {exc.strerror}") from None
    err.print(f"extraction API emulator on {server.url} ({args.rate}/s POST, "
              f"{args.poll_rate}/s GET); stats at {server.url}/stats; Ctrl-C stops")
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return EXIT_DONE


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args.dir)


COMMANDS = {
    "plan": cmd_plan, "submit": cmd_submit, "run-task": cmd_run_task, "status": cmd_status,
    "requeue": cmd_requeue, "merge": cmd_merge, "serve-api": cmd_serve_api, "demo": cmd_demo,
    "report": cmd_report,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UsageError as exc:
        err.print(f"error: {exc}", markup=False)
        return EXIT_USAGE
    except SchedulerError as exc:
        err.print(f"scheduler error: {exc}", markup=False)
        return EXIT_INCOMPLETE
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130


def entrypoint() -> None:
    sys.exit(main())

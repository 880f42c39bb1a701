"""`shardrun demo`: the whole life cycle on this machine with nothing to configure.

A small dataset shaped like the run that was lost (3,272/404/413 documents, here 330/40/41)
goes through the prebuilt-extraction processor against the local API emulator. The job
believes the service allows 40 calls/s; it allows 16, so the tasks meet 429s, honour
Retry-After and back off, and the shards, planned for the faster rate, overrun a short wall
clock: they are signalled, checkpoint, restart and resume. Then merge, and a report.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

import pyarrow.parquet as pq

from . import layout
from .backends.local import LocalBackend
from .console import RunProgress, err, out, status_tables
from .emulator import EmulatorConfig, EmulatorServer, start_in_thread
from .errors import UsageError
from .merge import merge
from .planfile import ensure_plan, make_plan, measured_items_per_s, read_manifests
from .spec import load_spec
from .status import run_status

SPLITS = {"train": 330, "val": 40, "test": 41}
MARKER = ".shardrun-demo"
SERVICE_RATE = 16.0  # what the emulated service really allows
KEY_ENV = "EXTRACTION_API_KEY"

JOB_TOML = """\
# Made by `shardrun demo`. The job believes the service allows 40 analyze calls/s; the
# emulator allows {service_rate:g}. Tasks learn it from 429 + Retry-After and back off, and
# shards planned for the faster rate overrun the 20 s wall clock, so they must resume.
name = "demo"
run_dir = "run"

[splits]
train = "data/train.txt"
val = "data/val.txt"
test = "data/test.txt"

[processor]
kind = "prebuilt-extraction"
endpoint = "{endpoint}"
api_key_env = "{key_env}"
concurrency = 8
rate_limit_per_s = 40
timeout_s = 10
max_attempts = 6

[checkpoint]
every_items = 25
every_seconds = 5

[slurm]
time = "0:20"          # 20 s wall clock
signal = "USR1"
signal_grace_s = 5      # USR1 at 15 s
max_concurrent = 4
max_restarts = 3

[planning]
target_fraction = 0.5
est_seconds_per_item = 0.5
"""


def make_dataset(root: Path, endpoint: str) -> None:
    data = root / "data"
    for split, count in SPLITS.items():
        docs = data / split
        docs.mkdir(parents=True)
        lines = []
        for i in range(count):
            name = f"{split}/doc-{i:05d}.pdf"
            (data / name).write_bytes(b"%PDF-1.4 " + f"document {i} of {split} ".encode()
                                      * (5 + i % 7))
            lines.append(name)
        (data / f"{split}.txt").write_text("\n".join(lines) + "\n")
    (root / "job.toml").write_text(JOB_TOML.format(endpoint=endpoint, key_env=KEY_ENV,
                                                   service_rate=SERVICE_RATE))
    (root / MARKER).write_text("made by shardrun demo; safe to delete\n")


def prepare(root: Path, endpoint: str) -> None:
    if root.exists():
        if not (root / MARKER).exists():
            raise UsageError(f"{root}: exists and was not made by `shardrun demo`; "
                             "choose another --dir")
        shutil.rmtree(root)
    root.mkdir(parents=True)
    make_dataset(root, endpoint)


def run_demo(root: Path) -> int:
    root = root.absolute()
    if root.exists() and not (root / MARKER).exists():
        raise UsageError(f"{root}: exists and was not made by `shardrun demo`; "
                         "choose another --dir")
    # A throwaway key, only in this process's environment (tasks inherit it): never on disk.
    os.environ[KEY_ENV] = secrets.token_urlsafe(24)
    server = start_in_thread(EmulatorConfig(
        rate_per_s=SERVICE_RATE, latency_s=0.15, poll_delay_s=0.3, retry_after_s=1,
        api_key=os.environ[KEY_ENV], seed=1))
    try:
        return _run(root, server)
    finally:
        server.shutdown()
        server.server_close()


def _run(root: Path, server: EmulatorServer) -> int:
    prepare(root, server.url)
    spec = load_spec(root / "job.toml")
    plan = ensure_plan(spec).plan
    sizing = plan.data["sizing"]
    out.print(f"[bold]shardrun demo[/bold] in {root}")
    out.print(f"plan: {sizing['throughput_per_task']:.1f} items/s per task (estimate), "
              f"<= {sizing['max_items_per_shard']} items/shard, wall clock "
              f"{spec.slurm.time_s} s, signal {spec.slurm.signal_name} "
              f"{spec.slurm.signal_grace_s} s before")
    for name, split in plan.splits.items():
        out.print(f"  {name}: {split.items} items in {len(split.shards)} shard(s)")

    selection = {name: list(range(len(s.shards))) for name, s in plan.splits.items()}

    def count_done() -> dict[str, int]:
        return {s.split: s.done for s in run_status(spec.run_dir, plan)[0]}

    with RunProgress({n: s.items for n, s in plan.splits.items()}, count_done,
                     log_every_s=5.0) as progress:
        report = LocalBackend(spec, on_tick=progress.tick).run(selection)

    splits, shards = run_status(spec.run_dir, plan)
    for table in status_tables(splits, shards):
        out.print(table)
    merged = merge(spec.run_dir, plan, None)
    planned = sum(s.items for s in plan.splits.values())
    once, parts = 0, 0
    for result in merged:
        if result.path is not None:
            ids = pq.read_table(result.path, columns=["item_id"]).column("item_id")
            once += len(set(ids.to_pylist())) if len(ids) == len(set(ids.to_pylist())) else 0
    for name, split in plan.splits.items():
        for k in range(len(split.shards)):
            parts += len(layout.list_parts(layout.shard_dir(spec.run_dir, name, k)))
    lost = planned - once
    out.print("\n[bold]what happened[/bold]")
    out.print(f"  items planned: {planned}; merged exactly once: {once}; lost: {lost}")
    out.print(f"  checkpoint parts written: {parts}")
    out.print(f"  tasks signalled at the wall clock: {report.count('signal')}; "
              f"restarted and resumed: {report.count('requeue')}; "
              f"killed: {report.count('timeout-kill')}; failed: {len(report.failed)}")
    for result in merged:
        out.print(f"  merged/{result.split}.parquet: {result.written} rows, sha256 "
                  f"{(result.sha256 or '')[:16]}")
    measured = measured_items_per_s(spec.run_dir)
    if measured:
        calibrated = make_plan(spec, read_manifests(spec), measured).data["sizing"]
        out.print(f"  measured throughput: {calibrated['throughput_per_task']:.1f} items/s per "
                  f"task; a re-plan would use <= {calibrated['max_items_per_shard']} "
                  "items/shard")
    service = server.state.stats()
    out.print(f"  the service accepted {service['accepted']} analyze calls at "
              f"{service['accept_rate_per_s']} calls/s against its limit of {SERVICE_RATE:g}/s "
              f"(the job was told 40/s); it answered {service['throttled_posts']} with 429 + "
              "Retry-After, and the tasks backed off")
    out.print(f"  try: shardrun status {root / 'job.toml'}")
    ok = lost == 0 and not report.failed and report.count("signal") > 0
    if not ok:
        err.print("demo did not show what it should (see above)")
    return 0 if ok else 1

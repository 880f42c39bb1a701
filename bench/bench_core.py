"""Core benchmarks (issue 2): checkpoint overhead, resume scan, merge.

    .venv/bin/python bench/bench_core.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))
from common import WORK, median_of, print_table, record

from shardrun import layout
from shardrun.atomic import atomic_write_table
from shardrun.checkpoint import Checkpointer
from shardrun.parts import PartWriter, scan_shard
from shardrun.runner import RunSettings, StopSignal, run_items
from shardrun.schema import ROW_SCHEMA

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class NoopProcessor:
    async def start(self) -> None: ...

    async def process(self, item: dict[str, Any]) -> dict[str, Any]:
        return {}

    async def close(self) -> None: ...


class SleepProcessor(NoopProcessor):
    """A fast service: 2 ms per item."""

    async def process(self, item: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0.002)
        return {}


class DiscardWriter:
    parts_written = 0

    def write(self, rows: list[dict[str, Any]]) -> None:
        self.parts_written += 1


def run_noop(n: int, writer: Any, every: int, processor: Any = None,
             concurrency: int = 4) -> float:
    items = [{"id": f"i{i:07d}", "path": None} for i in range(n)]
    settings = RunSettings(split="s", shard=0, worker="bench", concurrency=concurrency,
                           drain_s=1, progress_every_s=3600)

    async def go() -> None:
        await run_items(items, {}, processor or NoopProcessor(),
                        Checkpointer(writer, every, 3600, concurrency), StopSignal(), settings)

    start = time.perf_counter()
    asyncio.run(go())
    return n / (time.perf_counter() - start)


def bench_checkpoint(n: int, runs: int) -> list[list[str]]:
    rows = []
    cases = [(f"{n:,} no-op items, 4 in flight", n, None, 4),
             (f"{n // 5:,} items of 2 ms, 64 in flight", n // 5, SleepProcessor(), 64)]
    for label, count, processor, concurrency in cases:
        without = median_of(runs, lambda c=count, p=processor, k=concurrency:
                            run_noop(c, DiscardWriter(), 100, p, k))

        def with_parts(c: int = count, p: Any = processor, k: int = concurrency) -> float:
            folder = WORK / "ckpt"
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            return run_noop(c, PartWriter(folder, 0), 100, p, k)

        with_cp = median_of(runs, with_parts)
        rows.append([f"{label}, parts of 100", f"{without:,.0f}", f"{with_cp:,.0f}",
                     f"{1 - with_cp / without:.1%}", "< 10%"])
    return rows


def _rows(ids: list[str], shard: int) -> pa.Table:
    n = len(ids)
    return pa.table({
        "item_id": pa.array(ids, pa.string()), "split": pa.array(["s"] * n),
        "shard": pa.array([shard] * n, pa.int32()), "status": pa.array(["ok"] * n),
        "attempts": pa.array([1] * n, pa.int32()), "error": pa.nulls(n, pa.string()),
        "result": pa.array([f'{{"id":"{i}","chars":1234,"words":210}}' for i in ids]),
        "started_at": pa.array([T0] * n, ROW_SCHEMA.field("started_at").type),
        "finished_at": pa.array([T0] * n, ROW_SCHEMA.field("finished_at").type),
        "worker": pa.array(["slurm:1_1"] * n),
    }, schema=ROW_SCHEMA)


def bench_resume(items: int, parts: int, runs: int) -> list[list[str]]:
    shard = WORK / "resume" / "00000"
    if not shard.exists() or len(layout.list_parts(shard)) != parts:
        shutil.rmtree(shard, ignore_errors=True)
        shard.mkdir(parents=True)
        per = items // parts
        for k in range(parts):
            ids = [f"item-{k * per + j:08d}" for j in range(per)]
            pq.write_table(_rows(ids, 0), shard / layout.part_name(k))

    def scan() -> float:
        start = time.perf_counter()
        result = scan_shard(shard)
        assert len(result.ok_ids) == items  # each written once here
        return time.perf_counter() - start

    seconds = median_of(runs, scan)
    return [[f"resume scan: {items:,} ok items in {parts:,} parts", f"{seconds:.2f} s", "< 3 s"]]


MERGE_SCRIPT = """
import sys, time, json
from pathlib import Path
from shardrun.planfile import load_plan
from shardrun.merge import merge
run = Path(sys.argv[1])
start = time.perf_counter()
reports = merge(run, load_plan(run), None)
print(json.dumps({"seconds": time.perf_counter() - start, "rows": reports[0].written}))
"""

BASELINE_SCRIPT = """
import sys, time, json
import pyarrow.dataset as ds, pyarrow.parquet as pq
from pathlib import Path
run = Path(sys.argv[1])
files = sorted(str(p) for p in (run / "shards").glob("*/*/part-*.parquet"))
start = time.perf_counter()
table = ds.dataset(files, format="parquet").to_table()
pq.write_table(table, run / "baseline.parquet", compression="zstd")
print(json.dumps({"seconds": time.perf_counter() - start, "rows": table.num_rows}))
"""


def make_merge_run(rows: int, shards: int, part_rows: int) -> Path:
    run = WORK / f"merge-{rows}"
    marker = run / ".complete"
    if marker.exists():
        return run
    shutil.rmtree(run, ignore_errors=True)
    (run / "shards" / "s").mkdir(parents=True)
    ids = [f"doc-{i:09d}" for i in range(rows)]
    manifest = run / "s.parquet"
    pq.write_table(pa.table({"id": ids}), manifest)
    from shardrun.manifest import file_sha256

    per = rows // shards
    bounds = [[k * per, (k + 1) * per] for k in range(shards)]
    for k, (a, b) in enumerate(bounds):
        folder = layout.shard_dir(run, "s", k)
        folder.mkdir(parents=True)
        for seq, start in enumerate(range(a, b, part_rows)):
            atomic_write_table(folder / layout.part_name(seq),
                               _rows(ids[start:min(b, start + part_rows)], k))
    plan = {"version": 1, "job": "bench", "inputs_sha256": "-", "sizing": {},
            "splits": {"s": {"manifest": str(manifest), "manifest_sha256": file_sha256(manifest),
                             "items": rows, "shards": bounds}}}
    (run / "plan.json").write_text(json.dumps(plan))
    marker.write_text("ok")
    return run


def measure(script: str, run: Path) -> tuple[float, float]:
    """(seconds, peak RSS MiB) of ``script`` in a fresh interpreter (GNU time-free)."""
    wrapper = (
        "import resource, subprocess, sys, json\n"
        "out = subprocess.run([sys.executable, '-c', sys.argv[1], sys.argv[2]], check=True,"
        " capture_output=True, text=True).stdout\n"
        "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "print(json.dumps({**json.loads(out), 'rss_mib': rss}))\n"
    )
    done = subprocess.run([sys.executable, "-c", wrapper, script, str(run)], check=True,
                          capture_output=True, text=True)
    result = json.loads(done.stdout)
    return result["seconds"], result["rss_mib"]


def bench_merge(rows: int, shards: int, part_rows: int, runs: int) -> list[list[str]]:
    run = make_merge_run(rows, shards, part_rows)
    ours = [measure(MERGE_SCRIPT, run) for _ in range(runs)]
    base = [measure(BASELINE_SCRIPT, run) for _ in range(runs)]
    ours_s = sorted(s for s, _ in ours)[runs // 2]
    base_s = sorted(s for s, _ in base)[runs // 2]
    ours_rss = max(r for _, r in ours)
    base_rss = max(r for _, r in base)
    return [[f"merge {rows:,} rows ({shards} shards, parts of {part_rows:,})",
             f"{rows / ours_s:,.0f} rows/s", f"{rows / base_s:,.0f} rows/s",
             f"{base_s / ours_s:.2f}", ">= 0.50", f"{ours_rss:,.0f} MiB",
             f"{base_rss:,.0f} MiB", "< 1024 MiB"]]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller sizes, one run each")
    parser.add_argument("--x10", action="store_true",
                        help="only the resume scan and merge, at 10x the sizes")
    args = parser.parse_args()
    runs = 1 if args.quick else 3
    scale = 10 if args.quick else 1
    command = "python bench/bench_core.py" + (" --quick" if args.quick else "")
    if args.x10:
        bench_x10(runs)
        return

    header = ["case", "without checkpoints (items/s)", "with (items/s)", "cost", "target"]
    rows = bench_checkpoint(100_000 // scale, runs)
    print_table("checkpoint overhead", header, rows)
    if not args.quick:
        record("Checkpoint overhead", command, header, rows,
               "Medians of 3 runs. 'without' buffers and drops the rows, 'with' writes each "
               "100 as an atomic part (snappy Parquet, temp, fsync, rename, fsync of the "
               "folder) in a thread while items go on, never letting more than every_items "
               "+ concurrency items go unsaved. A part costs ~1.2 ms here (half of it the "
               "two fsyncs), ~12 us an item: the target is missed for a no-op processor "
               "(~5 us an item of pure asyncio overhead), is about met at 2 ms an item with "
               "64 in flight (8.6 %, 8.8 % and 11.7 % in three runs on this machine) and shrinks "
               "further as items get slower, as every real service is.")

    header = ["case", "median time", "target"]
    rows = bench_resume(1_000_000 // scale, 10_000 // scale, runs)
    print_table("resume scan", header, rows)
    if not args.quick:
        record("Resume scan", command, header, rows,
               "Medians of 3 runs (warm page cache). Reads only item_id/status/attempts.")

    header = ["case", "shardrun merge", "pyarrow read-all + write", "ratio", "target",
              "peak RSS (shardrun)", "peak RSS (pyarrow)", "target"]
    rows = bench_merge(5_000_000 // scale, 50, 1000, runs)
    print_table("merge", header, rows)
    if not args.quick:
        record("Merge", command, header, rows,
               "Medians of 3 runs, each in a fresh interpreter; ratio = pyarrow time / "
               "shardrun time. shardrun dedupes (latest ok wins) and checks every planned id "
               "shard by shard; the baseline only copies, holding everything in memory.")


def bench_x10(runs: int) -> None:
    command = "python bench/bench_core.py --x10"
    header = ["case", "median time", "target at 1x"]
    rows = bench_resume(10_000_000, 100_000, runs)
    print_table("resume scan at 10x", header, rows)
    record("Resume scan at 10x", command, header, rows,
           f"Medians of {runs} runs (warm page cache): 10x the items and 10x the parts of "
           "the 1x case; time grows linearly with the number of parts.")
    header = ["case", "shardrun merge", "pyarrow read-all + write", "ratio", "target",
              "peak RSS (shardrun)", "peak RSS (pyarrow)", "target"]
    rows = bench_merge(50_000_000, 500, 1000, runs)
    print_table("merge at 10x", header, rows)
    record("Merge at 10x", command, header, rows,
           f"Medians of {runs} runs in fresh interpreters. shardrun streams the manifest and "
           "the parts shard by shard, so its memory follows the largest shard (489 MiB here; "
           "261 MiB at 1x); the baseline's follows the whole split.")


if __name__ == "__main__":
    main()

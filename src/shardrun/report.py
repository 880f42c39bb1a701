"""`shardrun report`: a self-contained HTML page (and a PNG) that shows a run.

A timeline per shard (runs, parts, signals, requeues, the wall-clock line), throughput over
time against the rate limit, errors by code, and the status table. Charts are drawn with
matplotlib (the `report` extra) and embedded as inline SVG, so the page needs nothing else.
"""

from __future__ import annotations

import html
import io
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .errors import UsageError
from .events import read_events
from .parts import read_parts_checked
from .planfile import Plan
from .spec import JobSpec
from .status import ShardStatus, SplitStatus, run_status

_CODE = re.compile(r"^(HTTP \d{3}(?: [A-Za-z]+)?|[A-Za-z][A-Za-z0-9_.]*)")


@dataclass
class RunData:
    events: list[dict[str, Any]]
    finished: list[float]  # epoch seconds at which items finished
    errors: Counter[str]
    splits: list[SplitStatus]
    shards: list[ShardStatus]


def error_code(text: str) -> str:
    """The leading code of an error text ("HTTP 503", "InvalidContent", "RuntimeError")."""
    match = _CODE.match(text or "")
    return match.group(1) if match else "other"


def collect(spec: JobSpec, plan: Plan) -> RunData:
    finished: list[float] = []
    errors: Counter[str] = Counter()
    for name, split in plan.splits.items():
        for shard in range(len(split.shards)):
            path = spec.run_dir / "shards" / name / f"{shard:05d}"
            table, _, _ = read_parts_checked(path, ["status", "error", "finished_at"],
                                             quarantine_bad=False)
            if table.num_rows == 0:
                continue
            stamps = pc.cast(table.column("finished_at"), pa.int64())
            finished.extend(v / 1e6 for v in stamps.to_pylist() if v is not None)
            failed = table.filter(pc.equal(table.column("status"), "error"))
            errors.update(error_code(t) for t in failed.column("error").to_pylist())
    splits, shards = run_status(spec.run_dir, plan)
    return RunData(read_events(spec.run_dir), sorted(finished), errors, splits, shards)


def _figure(spec: JobSpec, data: RunData) -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("report needs matplotlib: pip install 'shardrun[report]'") from None
    keys = sorted({(e["split"], e["shard"]) for e in data.events})
    height = 4 + 0.25 * max(1, len(keys))
    fig, (timeline, throughput, errors) = plt.subplots(
        3, 1, figsize=(11, height + 6), gridspec_kw={"height_ratios": [height, 3, 2.5]})
    origin = min([e["t"] for e in data.events] + data.finished[:1], default=0.0)
    rows = {key: n for n, key in enumerate(keys)}
    for key in keys:
        y = rows[key]
        shard_events = [e for e in data.events if (e["split"], e["shard"]) == key]
        starts = [e for e in shard_events if e["kind"] == "start"]
        for n, start in enumerate(starts):
            t0 = start["t"]
            t1 = starts[n + 1]["t"] if n + 1 < len(starts) else max(
                (e["t"] for e in shard_events), default=t0)
            timeline.barh(y, max(t1 - t0, 0.05), left=t0 - origin, height=0.5,
                          color="#4c78a8" if n == 0 else "#72b7b2", edgecolor="none")
            if start.get("time_s"):
                wall = t0 + float(start["time_s"]) - origin
                timeline.plot([wall, wall], [y - 0.35, y + 0.35], color="#e45756", lw=1.5)
        parts = [e["t"] - origin for e in shard_events if e["kind"] == "part"]
        timeline.plot(parts, [y] * len(parts), "|", color="black", ms=7)
        for kind, marker, color in (("signal", "v", "#e45756"), ("stop", "x", "#f58518"),
                                    ("requeue", ">", "#54a24b"),
                                    ("timeout-kill", "X", "#b00000")):
            times = [e["t"] - origin for e in shard_events if e["kind"] == kind]
            timeline.plot(times, [y + 0.3] * len(times), marker, color=color, ms=7,
                          linestyle="none", label=kind)
    timeline.set_yticks(range(len(keys)), [f"{s}/{k:05d}" for s, k in keys])
    timeline.invert_yaxis()
    timeline.set_xlabel("seconds since the run started")
    timeline.set_title("timeline per shard: runs (bars), parts (|), wall clock (red line), "
                       "signal (v), stop (x), requeue (>)")
    if data.finished:
        span = max(1.0, data.finished[-1] - origin)
        width = max(1.0, span / 60)
        bins = [origin + width * i for i in range(int(span / width) + 2)]
        counts = Counter(int((t - origin) // width) for t in data.finished)
        throughput.step([b - origin for b in bins[:-1]],
                        [counts.get(i, 0) / width for i in range(len(bins) - 1)], where="post",
                        label="items finished / s")
        if spec.processor.rate_limit_per_s:
            throughput.axhline(spec.processor.rate_limit_per_s, color="#e45756", ls="--",
                               label=f"rate limit {spec.processor.rate_limit_per_s:g}/s")
        throughput.legend(loc="upper right")
    throughput.set_xlabel("seconds since the run started")
    throughput.set_title("throughput over time")
    codes = data.errors.most_common(12)
    errors.barh([c for c, _ in codes] or ["no errors"], [n for _, n in codes] or [0],
                color="#f58518")
    errors.invert_yaxis()
    errors.set_title("error rows by code")
    fig.tight_layout()
    return fig


def _table(header: list[str], rows: list[list[Any]], table_id: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def write_report(spec: JobSpec, plan: Plan, out: Path) -> tuple[Path, Path]:
    data = collect(spec, plan)
    fig = _figure(spec, data)
    out.mkdir(parents=True, exist_ok=True)
    png = out / "report.png"
    fig.savefig(png, dpi=90)
    svg = io.StringIO()
    fig.savefig(svg, format="svg")
    svg_text = svg.getvalue()
    svg_text = svg_text[svg_text.index("<svg"):]
    split_rows = [[s.split, s.items, s.done, s.errors, f"{s.complete_shards}/{s.shards}"]
                  for s in data.splits]
    shard_rows = [[r.split, r.shard, f"{r.done}/{r.items}", r.errors, r.state,
                   "-" if r.items_per_s is None else f"{r.items_per_s:.2f}/s",
                   "-" if r.restarts is None else r.restarts] for r in data.shards]
    error_rows = [[code, n] for code, n in data.errors.most_common()]
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>shardrun report: {html.escape(spec.name)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }}
th {{ background: #f3f3f3; }} td:first-child {{ text-align: left; }}
</style></head><body>
<h1>shardrun report: {html.escape(spec.name)}</h1>
<p>Generated {datetime.now().isoformat(timespec="seconds")} from {html.escape(str(spec.run_dir))}:
{sum(s.items for s in data.splits)} items planned, {sum(s.done for s in data.splits)} ok,
{sum(s.errors for s in data.splits)} in error; {len(data.events)} events.</p>
<section id="charts"><h2>Timeline, throughput, errors</h2>{svg_text}</section>
<section id="status"><h2>Status</h2>
{_table(["split", "items", "done", "errors", "shards done"], split_rows, "splits")}
{_table(["split", "shard", "done/total", "errors", "state", "throughput", "restarts"],
        shard_rows, "shards")}</section>
<section id="errors"><h2>Errors by code</h2>
{_table(["code", "rows"], error_rows, "error-codes") if error_rows else "<p>No errors.</p>"}
</section></body></html>
"""
    page_path = out / "report.html"
    page_path.write_text(page, encoding="utf-8")
    return page_path, png

"""`shardrun status --watch`: the status tables, refreshed in place on a terminal."""

from __future__ import annotations

import time

from rich.console import Group
from rich.live import Live

from .console import out, status_tables
from .planfile import Plan
from .runops import scheduler_states
from .spec import JobSpec
from .status import has_failures, is_complete, run_status

SACCT_EVERY_S = 30.0  # the controller is shared: accounting at most every 30 s


def watch_status(spec: JobSpec, plan: Plan, interval: float, show_shards: bool) -> int:
    last_states: dict[tuple[str, int], str] = {}
    last_sacct = 0.0
    with Live(console=out, auto_refresh=False) as live:
        try:
            while True:
                now = time.monotonic()
                if now - last_sacct >= SACCT_EVERY_S or not last_states:
                    last_states = dict(scheduler_states(spec))
                    last_sacct = now
                splits, shards = run_status(spec.run_dir, plan, last_states)
                stamp = time.strftime("%H:%M:%S")
                live.update(Group(*status_tables(splits, shards, show_shards),
                                  f"{stamp}: refreshing every {interval:g} s; Ctrl-C stops"),
                            refresh=True)
                if is_complete(splits):
                    break
                time.sleep(interval)
        except KeyboardInterrupt:
            pass
    return 1 if has_failures(splits) else 0

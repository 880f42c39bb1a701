"""Fault-injection points for the chaos tests (inert unless SHARDRUN_FAULT_PAUSE is set).

``SHARDRUN_FAULT_PAUSE=<point>:<seconds>`` makes the process announce (by creating the file
named in ``SHARDRUN_FAULT_MARKER``) and then sleep at that point, so a test can SIGKILL it
exactly there: e.g. ``part-before-rename`` (a part written and fsynced, not yet visible) or
``success-before-rename``.
"""

from __future__ import annotations

import os
import time


def pause_point(name: str) -> None:
    spec = os.environ.get("SHARDRUN_FAULT_PAUSE")
    if not spec:
        return
    point, _, seconds = spec.partition(":")
    if point != name:
        return
    marker = os.environ.get("SHARDRUN_FAULT_MARKER")
    if marker:
        with open(marker, "a") as handle:
            handle.write(f"{name} {os.getpid()}\n")
    time.sleep(float(seconds or 5))

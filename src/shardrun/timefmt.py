"""SLURM time strings (``--time``) to seconds and back.

SLURM accepts "minutes", "minutes:seconds", "hours:minutes:seconds", "days-hours",
"days-hours:minutes" and "days-hours:minutes:seconds".
"""

from __future__ import annotations

import re

_DAYS = re.compile(r"^(\d+)-(\d+)(?::(\d+))?(?::(\d+))?$")
_CLOCK = re.compile(r"^(\d+)(?::(\d+))?(?::(\d+))?$")


def parse_slurm_time(text: str) -> int:
    """Return the number of seconds in a SLURM time string; raise ValueError if malformed."""
    value = text.strip()
    if days := _DAYS.match(value):
        d, h, m, s = (int(g) if g else 0 for g in days.groups())
        seconds = ((d * 24 + h) * 60 + m) * 60 + s
    elif clock := _CLOCK.match(value):
        parts = [int(g) for g in clock.groups() if g is not None]
        if len(parts) == 1:
            seconds = parts[0] * 60
        elif len(parts) == 2:
            seconds = parts[0] * 60 + parts[1]
        else:
            seconds = (parts[0] * 60 + parts[1]) * 60 + parts[2]
    else:
        raise ValueError(
            f"not a SLURM time: {text!r} (use minutes, MM:SS, HH:MM:SS, D-HH or D-HH:MM:SS)"
        )
    if seconds <= 0:
        raise ValueError(f"time limit must be positive: {text!r}")
    return seconds


def format_slurm_time(seconds: int) -> str:
    """Format seconds as D-HH:MM:SS (or HH:MM:SS under a day), which sbatch accepts."""
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}-{clock}" if days else clock

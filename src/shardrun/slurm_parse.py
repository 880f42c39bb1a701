"""Parsers of SLURM command output (pure; tested on output recorded from a real cluster)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from .errors import SchedulerError

# squeue -h -r -o SQUEUE_FORMAT: one line per array task, pending ones included
SQUEUE_FORMAT = "%F|%K|%i|%T|%r|%e"
# sacct -X -P -n -o SACCT_FORMAT
SACCT_FORMAT = "JobID,JobIDRaw,State,ExitCode"


@dataclass(frozen=True)
class QueueEntry:
    array_job_id: str
    task_id: int | None  # None: not an array task
    job_id: str  # as squeue prints it (e.g. "1234_7")
    state: str  # PENDING, RUNNING, REQUEUED, COMPLETING, ...
    reason: str
    end_time: str


@dataclass(frozen=True)
class AccountingEntry:
    array_job_id: str
    task_id: int | None
    state: str  # COMPLETED, FAILED, TIMEOUT, OUT_OF_MEMORY, CANCELLED, REQUEUED, ...
    exit_code: str


def parse_sbatch_parsable(output: str) -> str:
    """`sbatch --parsable` prints "jobid" or "jobid;cluster"."""
    line = output.strip().splitlines()[-1] if output.strip() else ""
    job_id = line.split(";", 1)[0].strip()
    if not job_id.isdigit():
        raise SchedulerError(f"sbatch --parsable gave no job id; output was: {output!r}")
    return job_id


def _task(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def parse_squeue(output: str) -> list[QueueEntry]:
    entries = []
    for line in output.splitlines():
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) != 6:
            raise SchedulerError(f"unexpected squeue line {line!r} (format {SQUEUE_FORMAT})")
        array_job, task, job_id, state, reason, end = fields
        entries.append(QueueEntry(array_job, _task(task), job_id, state, reason, end))
    return entries


_SACCT_ID = re.compile(r"^(\d+)(?:_(\d+))?$")


def parse_sacct(output: str) -> list[AccountingEntry]:
    """Lines of `sacct -X -P -n -o JobID,JobIDRaw,State,ExitCode`; pending array ranges
    ("12_[3-5]") are skipped: squeue reports those."""
    entries = []
    for line in output.splitlines():
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) != 4:
            raise SchedulerError(f"unexpected sacct line {line!r} (format {SACCT_FORMAT})")
        job_id, _raw, state, exit_code = fields
        match = _SACCT_ID.match(job_id)
        if match is None:
            continue
        task = int(match.group(2)) if match.group(2) is not None else None
        entries.append(AccountingEntry(match.group(1), task, state.split()[0], exit_code))
    return entries


def parse_config_value(output: str, key: str) -> str | None:
    """A value of `scontrol show config` ("MaxArraySize            = 1001")."""
    for line in output.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() == key:
            return value.strip()
    return None


def parse_end_time(output: str) -> float | None:
    """`squeue -h -j ID -o %e` prints the local end time, e.g. 2026-12-04T15:24:15."""
    text = output.strip()
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S").timestamp()
    except ValueError:
        return None

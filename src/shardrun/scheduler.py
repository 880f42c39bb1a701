"""The one door to the scheduler: every sbatch/squeue/sacct/scontrol call goes through here.

A ``Scheduler`` runs commands through an injectable ``runner`` (tests pass recorded output or
count calls) with a timeout, and raises SchedulerError with the command and its raw output.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .errors import SchedulerError
from .slurm_parse import (
    SACCT_FORMAT,
    SQUEUE_FORMAT,
    AccountingEntry,
    QueueEntry,
    parse_config_value,
    parse_end_time,
    parse_sacct,
    parse_sbatch_parsable,
    parse_squeue,
)


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: str
    stderr: str


Runner = Callable[[Sequence[str], str | None, float], Completed]


def subprocess_runner(argv: Sequence[str], stdin: str | None, timeout: float) -> Completed:
    try:
        done = subprocess.run(list(argv), input=stdin, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except FileNotFoundError:
        return Completed(127, "", f"{argv[0]}: command not found")
    except subprocess.TimeoutExpired as exc:
        return Completed(124, str(exc.stdout or ""), f"timed out after {timeout} s")
    return Completed(done.returncode, done.stdout, done.stderr)


class Scheduler:
    def __init__(self, runner: Runner = subprocess_runner, timeout_s: float = 60.0) -> None:
        self.runner = runner
        self.timeout_s = timeout_s
        self.calls: Counter[str] = Counter()  # by command name: how hard we hit the controller

    def _run(self, argv: list[str], stdin: str | None = None) -> str:
        self.calls[argv[0]] += 1
        done = self.runner(argv, stdin, self.timeout_s)
        if done.returncode != 0:
            raise SchedulerError(
                f"`{' '.join(argv)}` exited {done.returncode}: "
                f"stdout={done.stdout.strip()!r} stderr={done.stderr.strip()!r}"
            )
        return done.stdout

    @staticmethod
    def available() -> bool:
        return shutil.which("sbatch") is not None

    def sbatch(self, script: str) -> str:
        """Submit a script on stdin; return the job id."""
        return parse_sbatch_parsable(self._run(["sbatch", "--parsable"], stdin=script))

    def squeue(self, job_ids: Sequence[str]) -> list[QueueEntry]:
        """All queued tasks (pending ones expanded) of these array jobs, in one call.

        Asks for the user's jobs and filters here: `squeue -j` fails outright when any one id
        has already left the controller (after MinJobAge).
        """
        if not job_ids:
            return []
        wanted = set(job_ids)
        entries = parse_squeue(self._run(["squeue", "-h", "-r", "--me", "-o", SQUEUE_FORMAT]))
        return [e for e in entries if e.array_job_id in wanted]

    def sacct(self, job_ids: Sequence[str]) -> list[AccountingEntry]:
        if not job_ids:
            return []
        return parse_sacct(self._run(
            ["sacct", "-X", "-P", "-n", "-o", SACCT_FORMAT, "-j", ",".join(job_ids)]))

    def max_array_size(self) -> int:
        value = parse_config_value(self._run(["scontrol", "show", "config"]), "MaxArraySize")
        if value is None or not value.isdigit():
            raise SchedulerError(f"scontrol show config: no MaxArraySize (got {value!r})")
        return int(value)

    def requeue(self, job: str) -> None:
        self._run(["scontrol", "requeue", job])

    def start_now(self, job: str) -> None:
        """Skip SLURM's requeue delay (EligibleTime): used by tests and impatient users."""
        self._run(["scontrol", "update", f"JobId={job}", "StartTime=now"])

    def end_time(self, job_id: str) -> float | None:
        return parse_end_time(self._run(["squeue", "-h", "-j", job_id, "-o", "%e"]))

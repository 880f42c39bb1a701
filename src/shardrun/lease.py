"""At most one runner per shard: a lease file that its holder keeps fresh (heartbeat).

Acquiring is a check-then-write under an flock of a lock file beside the lease, so two
runners starting together cannot both win. A lease is stale, and may be taken over, when its
heartbeat is older than ``stale_after_s``, when its holder is a dead process on this host,
or when it belongs to an earlier run of the same SLURM job (SLURM never runs two copies of
one job id).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import layout
from .atomic import atomic_write_bytes

log = logging.getLogger("shardrun")

HEARTBEAT_S = 10.0
STALE_AFTER_S = 90.0


class LeaseHeldError(RuntimeError):
    """Another live runner holds the shard."""


@dataclass(frozen=True)
class Holder:
    worker: str
    job_key: str | None  # "<array job>_<task>" of the scheduler, None when run by hand
    restart: int


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def dead_holder(info: dict[str, Any], age_s: float, stale_after_s: float) -> str | None:
    """Why a lease's holder is known dead, or None if it may be alive."""
    if age_s > stale_after_s:
        return f"heartbeat {age_s:.0f} s old"
    if info.get("host") == socket.gethostname() and not _pid_alive(int(info.get("pid", -1))):
        return f"holder pid {info.get('pid')} is not running"
    return None


def stale_reason(info: dict[str, Any], age_s: float, me: Holder,
                 stale_after_s: float) -> str | None:
    """Why an existing lease may be taken over by ``me``, or None if it may not."""
    if reason := dead_holder(info, age_s, stale_after_s):
        return reason
    if (me.job_key is not None and info.get("job_key") == me.job_key
            and int(info.get("restart", 0)) < me.restart):
        return f"held by an earlier run (restart {info.get('restart')}) of the same job"
    return None


class Lease:
    def __init__(self, shard_path: Path, holder: Holder,
                 stale_after_s: float = STALE_AFTER_S) -> None:
        self.path = layout.lease_path(shard_path)
        self.holder = holder
        self.stale_after_s = stale_after_s
        self.token = uuid.uuid4().hex
        self.held = False

    def _content(self) -> bytes:
        return json.dumps({
            "token": self.token, "worker": self.holder.worker, "job_key": self.holder.job_key,
            "restart": self.holder.restart, "host": socket.gethostname(), "pid": os.getpid(),
            "acquired_at": time.time(),
        }).encode()

    def _read(self) -> tuple[dict[str, Any], float] | None:
        try:
            age = time.time() - self.path.stat().st_mtime
            return json.loads(self.path.read_bytes() or b"{}"), age
        except FileNotFoundError:
            return None
        except ValueError:
            return {}, age  # written atomically, so only a foreign file lands here

    def acquire(self) -> None:
        # The check-then-replace below runs under an flock, so two contenders cannot both
        # judge the same stale lease and both replace it.
        lock_fd = os.open(self.path.with_name(".lease.lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            current = self._read()
            if current is not None:
                info, age = current
                reason = stale_reason(info, age, self.holder, self.stale_after_s)
                if reason is None:
                    raise LeaseHeldError(
                        f"{self.path.parent}: shard is being run by {info.get('worker')} "
                        f"(pid {info.get('pid')} on {info.get('host')}, heartbeat {age:.0f} s "
                        "ago); this runner exits without writing"
                    )
                log.info("taking over the lease of %s: %s", info.get("worker"), reason)
            atomic_write_bytes(self.path, self._content())
            self.held = True
        finally:
            os.close(lock_fd)  # closing releases the flock

    def still_held(self) -> bool:
        current = self._read()
        return current is not None and current[0].get("token") == self.token

    def heartbeat(self) -> None:
        if self.held:
            os.utime(self.path)

    def release(self) -> None:
        if self.held and self.still_held():
            self.path.unlink(missing_ok=True)
        self.held = False


def read_live_lease(path: Path, stale_after_s: float = STALE_AFTER_S) -> dict[str, Any] | None:
    """The lease at ``path`` if its holder may be alive, else None."""
    try:
        age = time.time() - path.stat().st_mtime
        info: dict[str, Any] = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return None if dead_holder(info, age, stale_after_s) else info


def live_leases(run_dir: Path, stale_after_s: float = STALE_AFTER_S) -> int:
    """How many shards of the run have a live lease (tasks actually running)."""
    return sum(read_live_lease(p, stale_after_s) is not None
               for p in (run_dir / "shards").glob("*/*/_LEASE.json"))

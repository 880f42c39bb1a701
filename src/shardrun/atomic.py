"""Files that are visible only when complete: temp file, fsync, rename, fsync of the folder."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from .faults import pause_point


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


TMP_MARK = ".tmp-"


def atomic_write(path: Path, write: Callable[[IO[bytes]], None],
                 fault_point: str | None = None) -> None:
    """Write through ``write`` into a hidden temp file beside ``path``, then publish it."""
    tmp = path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}")
    try:
        with tmp.open("wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        if fault_point is not None:
            pause_point(fault_point)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    def write(handle: IO[bytes]) -> None:
        handle.write(data)

    atomic_write(path, write)


def atomic_write_json(path: Path, obj: Any, fault_point: str | None = None) -> None:
    data = (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()

    def write(handle: IO[bytes]) -> None:
        handle.write(data)

    atomic_write(path, write, fault_point)


def atomic_write_table(path: Path, table: pa.Table, fault_point: str | None = None) -> None:
    # Parts are small and short-lived: snappy costs a third of zstd per part here.
    atomic_write(path, lambda handle: pq.write_table(table, handle, compression="snappy"),
                 fault_point)


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete temp files a killed writer left (call only while holding the folder's lease)."""
    stale = [p for p in folder.glob(f".*{TMP_MARK}*") if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale

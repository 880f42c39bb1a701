"""Split manifests: .txt (one id/path a line), .csv, .jsonl or .parquet with an ``id`` column.

A manifest is read into an Arrow table with a string ``id`` column, a string ``path`` column
(null where the manifest has none) and any other columns as they are.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from .errors import UsageError

SUFFIXES = (".txt", ".csv", ".jsonl", ".parquet")


@dataclass(frozen=True)
class Manifest:
    path: Path
    sha256: str
    table: pa.Table  # columns: id (string), path (string, nullable), extras

    @property
    def ids(self) -> pa.ChunkedArray:
        return self.table.column("id")

    def __len__(self) -> int:
        return int(self.table.num_rows)

    def items(self, start: int, stop: int) -> list[dict[str, Any]]:
        """The items of rows [start, stop) as dicts for a processor."""
        items: list[dict[str, Any]] = self.table.slice(start, stop - start).to_pylist()
        return items


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _read_txt(path: Path) -> pa.Table:
    with path.open("r", encoding="utf-8", newline="\n") as handle:
        ids = [line.rstrip("\r\n") for line in handle]
    ids = [i for i in ids if i.strip()]
    return pa.table({"id": pa.array(ids, pa.string()), "path": pa.array(ids, pa.string())})


def _read_table(path: Path) -> pa.Table:
    suffix = path.suffix.lower()
    if suffix == ".txt":
        return _read_txt(path)
    if suffix == ".csv":
        # Ids and paths stay text: "007" must not become 7.
        types = {"id": pa.string(), "path": pa.string()}
        return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=types))
    if suffix == ".jsonl":
        return pajson.read_json(path)
    if suffix == ".parquet":
        return pq.read_table(path)
    raise UsageError(f"{path}: unsupported manifest type {suffix!r}; use one of {SUFFIXES}")


def _normalise(path: Path, table: pa.Table) -> pa.Table:
    if "id" not in table.column_names:
        raise UsageError(f"{path}: manifest has no 'id' column (columns: {table.column_names})")
    ids = table.column("id")
    if not pa.types.is_string(ids.type) and not pa.types.is_large_string(ids.type):
        ids = pc.cast(ids, pa.string())
    table = table.set_column(table.column_names.index("id"), "id", ids.cast(pa.string()))
    if "path" not in table.column_names:
        table = table.append_column("path", pa.nulls(table.num_rows, pa.string()))
    elif not pa.types.is_string(table.column("path").type):
        table = table.set_column(
            table.column_names.index("path"), "path", pc.cast(table.column("path"), pa.string())
        )
    return table


def _check_ids(path: Path, ids: pa.ChunkedArray) -> None:
    if ids.null_count:
        row = pc.index(pc.is_null(ids), True).as_py()
        raise UsageError(f"{path}: row {row + 1}: empty id")
    empty = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(ids)), 0)
    if pc.any(empty).as_py():
        raise UsageError(f"{path}: row {pc.index(empty, True).as_py() + 1}: empty id")
    newline = pc.match_substring_regex(ids, r"[\r\n\x00]")
    if pc.any(newline).as_py():
        row = pc.index(newline, True).as_py()
        raise UsageError(
            f"{path}: row {row + 1}: id {ids[row].as_py()!r} contains a newline or NUL"
        )
    counts = pc.value_counts(ids)
    dupes = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
    if len(dupes):
        shown = ", ".join(repr(v) for v in dupes.slice(0, 5).to_pylist())
        raise UsageError(f"{path}: {len(dupes)} duplicate id(s), e.g. {shown}")


def _resolve_paths(base: Path, paths: pa.ChunkedArray) -> pa.ChunkedArray:
    # Relative item paths are relative to the manifest's folder, like the spec's own paths.
    joined = pc.binary_join_element_wise(str(base), paths, "/")
    return pc.if_else(pc.starts_with(paths, "/"), paths, joined)


BATCH = 65_536


def _txt_id_batches(path: Path) -> Iterator[pa.Array]:
    with path.open("r", encoding="utf-8", newline="\n") as handle:
        batch: list[str] = []
        for line in handle:
            text = line.rstrip("\r\n")
            if text.strip():
                batch.append(text)
            if len(batch) >= BATCH:
                yield pa.array(batch, pa.string())
                batch = []
        if batch:
            yield pa.array(batch, pa.string())


def _id_batches(path: Path) -> Iterator[pa.Array]:
    """The manifest's ids, in order, a batch at a time (memory stays flat)."""
    suffix = path.suffix.lower()
    if suffix == ".txt":
        yield from _txt_id_batches(path)
        return
    if suffix == ".parquet":
        batches: Iterator[pa.RecordBatch] = pq.ParquetFile(path).iter_batches(
            batch_size=BATCH, columns=["id"])
    elif suffix == ".csv":
        batches = iter(pacsv.open_csv(path, convert_options=pacsv.ConvertOptions(
            column_types={"id": pa.string()}, include_columns=["id"])))
    else:
        batches = iter(pajson.open_json(path))
    for batch in batches:
        yield pc.cast(batch.column(batch.schema.get_field_index("id")), pa.string())


def planned_id_slices(path: Path, split: str, planned_sha256: str,
                      bounds: Sequence[tuple[int, int]]) -> Iterator[pa.Array]:
    """The ids of each [start, stop) range in turn, streaming the manifest once.

    For merging large splits: unlike read_manifest, memory follows the largest range."""
    try:
        if file_sha256(path) != planned_sha256:
            raise UsageError(f"{path}: manifest of split {split!r} changed since planning; "
                             "re-plan with `shardrun plan --force`")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read manifest of split {split!r}: {exc}") from None
    source = _id_batches(path)
    pending: list[pa.Array] = []
    have = 0
    position = 0
    for start, stop in bounds:
        while have < stop - position:
            batch = next(source, None)
            if batch is None:
                raise UsageError(f"{path}: manifest of split {split!r} ends before row {stop}")
            pending.append(batch)
            have += len(batch)
        ids = pa.chunked_array(pending, pa.string()).combine_chunks()
        skip = start - position
        yield ids.slice(skip, stop - start)
        rest = ids.slice(skip + stop - start)
        pending, have, position = ([rest] if len(rest) else []), len(rest), stop


def read_manifest(path: Path, split: str, planned_sha256: str | None = None) -> Manifest:
    """Read, normalise and validate a manifest; UsageError names the file and the problem.

    With ``planned_sha256`` (the hash recorded when the run was planned) a changed file is
    refused, and an unchanged one is not validated again: it was validated when planned.
    """
    if not path.is_file():
        raise UsageError(f"{path}: manifest of split {split!r} not found")
    try:
        sha = file_sha256(path)
        if planned_sha256 is not None and sha != planned_sha256:
            raise UsageError(
                f"{path}: manifest of split {split!r} changed since planning (sha256 "
                f"{sha[:12]} != planned {planned_sha256[:12]}); re-plan with "
                "`shardrun plan --force`"
            )
        table = _normalise(path, _read_table(path))
    except UsageError:
        raise
    except (OSError, pa.ArrowException, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read manifest of split {split!r}: {exc}") from None
    if planned_sha256 is None:
        _check_ids(path, table.column("id"))
    table = table.set_column(
        table.column_names.index("path"), "path", _resolve_paths(path.parent, table.column("path"))
    )
    return Manifest(path=path, sha256=sha, table=table.combine_chunks())

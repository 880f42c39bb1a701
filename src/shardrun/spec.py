"""The job spec: a TOML file read with tomllib into frozen dataclasses, strictly validated.

Every problem is a UsageError naming the file, the key and the value, raised before anything
is created or submitted.
"""

from __future__ import annotations

import dataclasses
import re
import signal as _signal
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UsageError
from .timefmt import parse_slurm_time

Check = Callable[[Any], str | None]


def _positive(value: Any) -> str | None:
    return None if value > 0 else "must be > 0"


def _non_negative(value: Any) -> str | None:
    return None if value >= 0 else "must be >= 0"


def _fraction(value: Any) -> str | None:
    return None if 0 < value <= 1 else "must be in (0, 1]"


def _slurm_time(value: Any) -> str | None:
    try:
        parse_slurm_time(value)
    except ValueError as exc:
        return str(exc)
    return None


def _signal_name(value: Any) -> str | None:
    name = value.upper().removeprefix("SIG")
    return None if hasattr(_signal, f"SIG{name}") else "is not a signal name (e.g. USR1, TERM)"


def _meta(kind: Any, check: Check | None = None) -> dict[str, Any]:
    return {"kind": kind, "check": check}


@dataclass(frozen=True)
class ProcessorSpec:
    kind: str = field(metadata=_meta(str))
    function: str | None = field(default=None, metadata=_meta(str))
    endpoint: str = field(default="http://127.0.0.1:8089", metadata=_meta(str))
    model: str = field(default="prebuilt-layout", metadata=_meta(str))
    api_key_env: str = field(default="EXTRACTION_API_KEY", metadata=_meta(str))
    api_version: str = field(default="2024-11-30", metadata=_meta(str))
    key_header: str = field(default="Ocp-Apim-Subscription-Key", metadata=_meta(str))
    analyze_path: str = field(
        default="/documentintelligence/documentModels/{model}:analyze", metadata=_meta(str)
    )
    concurrency: int = field(default=4, metadata=_meta(int, _positive))
    rate_limit_per_s: float | None = field(default=None, metadata=_meta(float, _positive))
    poll_rate_limit_per_s: float | None = field(default=None, metadata=_meta(float, _positive))
    timeout_s: float = field(default=120.0, metadata=_meta(float, _positive))
    max_attempts: int = field(default=6, metadata=_meta(int, _positive))


@dataclass(frozen=True)
class CheckpointSpec:
    every_items: int = field(default=100, metadata=_meta(int, _positive))
    every_seconds: float = field(default=60.0, metadata=_meta(float, _positive))


@dataclass(frozen=True)
class SlurmSpec:
    time: str = field(default="06:00:00", metadata=_meta(str, _slurm_time))
    partition: str | None = field(default=None, metadata=_meta(str))
    max_concurrent: int = field(default=8, metadata=_meta(int, _positive))
    signal: str = field(default="USR1", metadata=_meta(str, _signal_name))
    signal_grace_s: int = field(default=300, metadata=_meta(int, _positive))
    cpus_per_task: int = field(default=1, metadata=_meta(int, _positive))
    mem: str | None = field(default="2G", metadata=_meta(str))
    max_restarts: int = field(default=5, metadata=_meta(int, _non_negative))
    extra: tuple[str, ...] = field(default=(), metadata=_meta(list))
    template: str | None = field(default=None, metadata=_meta(str))

    @property
    def time_s(self) -> int:
        return parse_slurm_time(self.time)

    @property
    def signal_name(self) -> str:
        return self.signal.upper().removeprefix("SIG")


@dataclass(frozen=True)
class PlanningSpec:
    target_fraction: float = field(default=0.5, metadata=_meta(float, _fraction))
    est_seconds_per_item: float = field(default=6.6, metadata=_meta(float, _positive))


@dataclass(frozen=True)
class JobSpec:
    name: str
    path: Path  # the spec file itself
    run_dir: Path
    splits: Mapping[str, Path]
    processor: ProcessorSpec
    checkpoint: CheckpointSpec
    slurm: SlurmSpec
    planning: PlanningSpec

    def template_path(self) -> Path | None:
        if self.slurm.template is None:
            return None
        return _resolve(self.path.parent, self.slurm.template)


_SPLIT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_TOP_KEYS = ("name", "run_dir", "splits", "processor", "checkpoint", "slurm", "planning")
_PROCESSOR_KINDS = ("python", "prebuilt-extraction")


def _resolve(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path)


def _type_ok(value: Any, kind: Any) -> bool:
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, int | float)
    return isinstance(value, kind)


def _type_name(kind: Any) -> str:
    return {str: "a string", int: "an integer", float: "a number", list: "a list"}[kind]


def _section(file: Path, name: str, table: Any, cls: type[Any]) -> Any:
    if not isinstance(table, dict):
        raise UsageError(f"{file}: [{name}] must be a table, got {table!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise UsageError(
            f"{file}: [{name}] unknown key {unknown[0]!r} = {table[unknown[0]]!r}; "
            f"valid keys: {', '.join(fields)}"
        )
    values: dict[str, Any] = {}
    for key, f in fields.items():
        if key not in table:
            if f.default is dataclasses.MISSING:
                raise UsageError(f"{file}: [{name}] missing required key {key!r}")
            continue
        value = table[key]
        kind, check = f.metadata["kind"], f.metadata["check"]
        if not _type_ok(value, kind):
            raise UsageError(
                f"{file}: [{name}] {key} = {value!r}: must be {_type_name(kind)}"
            )
        if kind is list:
            bad = [v for v in value if not isinstance(v, str)]
            if bad:
                raise UsageError(f"{file}: [{name}] {key} = {value!r}: items must be strings")
            value = tuple(value)
        elif kind is float:
            value = float(value)
        if check is not None and (problem := check(value)):
            raise UsageError(f"{file}: [{name}] {key} = {value!r}: {problem}")
        values[key] = value
    return cls(**values)


def parse_spec(file: Path, data: Mapping[str, Any]) -> JobSpec:
    """Validate parsed TOML into a JobSpec (pure: touches no file)."""
    unknown = sorted(set(data) - set(_TOP_KEYS))
    if unknown:
        raise UsageError(
            f"{file}: unknown key {unknown[0]!r} = {data[unknown[0]]!r}; "
            f"valid keys: {', '.join(_TOP_KEYS)}"
        )
    for key in ("name", "run_dir"):
        value = data.get(key)
        if not isinstance(value, str) or not value.strip():
            raise UsageError(f"{file}: {key} = {value!r}: must be a non-empty string")
    splits_table = data.get("splits")
    if not isinstance(splits_table, dict) or not splits_table:
        raise UsageError(f"{file}: [splits] = {splits_table!r}: must be a table of name = manifest")
    base = file.parent
    splits: dict[str, Path] = {}
    for split, manifest in splits_table.items():
        if not _SPLIT_NAME.match(split):
            raise UsageError(
                f"{file}: [splits] {split!r}: split names may use letters, digits, '_', '.', '-'"
            )
        if not isinstance(manifest, str) or not manifest:
            raise UsageError(f"{file}: [splits] {split} = {manifest!r}: must be a file path")
        splits[split] = _resolve(base, manifest)

    processor = _section(file, "processor", data.get("processor", {}), ProcessorSpec)
    if processor.kind not in _PROCESSOR_KINDS:
        raise UsageError(
            f"{file}: [processor] kind = {processor.kind!r}: must be one of "
            f"{', '.join(_PROCESSOR_KINDS)}"
        )
    if processor.kind == "python" and not (processor.function and ":" in processor.function):
        raise UsageError(
            f"{file}: [processor] function = {processor.function!r}: kind = \"python\" needs "
            "function = \"package.module:callable\""
        )
    slurm = _section(file, "slurm", data.get("slurm", {}), SlurmSpec)
    if slurm.signal_grace_s >= slurm.time_s:
        raise UsageError(
            f"{file}: [slurm] signal_grace_s = {slurm.signal_grace_s!r}: must be shorter than "
            f"time = {slurm.time!r} ({slurm.time_s} s)"
        )
    return JobSpec(
        name=data["name"],
        path=file,
        run_dir=_resolve(base, data["run_dir"]),
        splits=splits,
        processor=processor,
        checkpoint=_section(file, "checkpoint", data.get("checkpoint", {}), CheckpointSpec),
        slurm=slurm,
        planning=_section(file, "planning", data.get("planning", {}), PlanningSpec),
    )


def load_spec(path: str | Path) -> JobSpec:
    """Read and validate a job spec file."""
    file = Path(path).absolute()
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise UsageError(f"{file}: cannot read job spec: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{file}: not valid TOML: {exc}") from None
    return parse_spec(file, data)

"""Rendering the sbatch wrapper of a split's array (pure: returns text).

Every value is shell-quoted; placeholders are ``{{ name }}`` so that the script's own ``$VAR``
and SLURM's ``%A_%a`` pass through untouched. A template naming an unknown placeholder is an
error, not a silently broken script.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from . import layout
from .errors import UsageError
from .spec import JobSpec
from .submissions import array_spec
from .timefmt import format_slurm_time

_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


@dataclass(frozen=True)
class ArrayChunk:
    """One sbatch array: shard = offset + SLURM_ARRAY_TASK_ID."""

    offset: int
    indices: tuple[int, ...]

    @property
    def shards(self) -> list[int]:
        return [self.offset + i for i in self.indices]


def chunk_shards(shards: list[int], max_array_size: int) -> list[ArrayChunk]:
    """Group shards into arrays whose indices stay below MaxArraySize (dense from 0)."""
    chunks: list[ArrayChunk] = []
    ordered = sorted(set(shards))
    start = 0
    while start < len(ordered):
        offset = ordered[start]
        stop = start
        while stop < len(ordered) and ordered[stop] - offset < max_array_size:
            stop += 1
        chunks.append(ArrayChunk(offset, tuple(s - offset for s in ordered[start:stop])))
        start = stop
    return chunks


def default_template() -> str:
    return (resources.files("shardrun") / "sbatch_templates" / "array.sbatch").read_text()


def load_template(spec: JobSpec) -> str:
    path = spec.template_path()
    if path is None:
        return default_template()
    try:
        return path.read_text()
    except OSError as exc:
        raise UsageError(f"{spec.path}: [slurm] template = {spec.slurm.template!r}: "
                         f"cannot read {path}: {exc.strerror}") from None


def render(template: str, values: dict[str, str], source: str = "template") -> str:
    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise UsageError(f"{source}: unknown placeholder {{{{ {name} }}}}; "
                             f"known: {', '.join(sorted(values))}")
        return values[name]

    return _PLACEHOLDER.sub(fill, template)


def sbatch_values(spec: JobSpec, split: str, chunk: ArrayChunk, python: str,
                  retry_errors: bool = False) -> dict[str, str]:
    slurm = spec.slurm
    q = shlex.quote
    options = []
    if slurm.partition:
        options.append(f"#SBATCH --partition={q(slurm.partition)}")
    if slurm.mem:
        options.append(f"#SBATCH --mem={q(slurm.mem)}")
    options += [f"#SBATCH {q(flag)}" for flag in slurm.extra]
    command = [python, "-m", "shardrun", "run-task", str(spec.path), "--split", split,
               "--shard-offset", str(chunk.offset)]
    if retry_errors:
        command.append("--retry-errors")
    log = Path(layout.log_dir(spec.run_dir, split)) / "%A_%a.log"
    return {
        "job_name": q(f"{spec.name}-{split}"),
        "array": array_spec(list(chunk.indices), slurm.max_concurrent),
        "time": format_slurm_time(slurm.time_s),
        "signal": f"B:{slurm.signal_name}@{slurm.signal_grace_s}",
        "output": q(str(log)),
        "cpus_per_task": str(slurm.cpus_per_task),
        "sbatch_options": "\n".join(options),
        "command": " ".join(q(part) for part in command),
        "split": q(split),
        "job_file": q(str(spec.path)),
        "run_dir": q(str(spec.run_dir)),
    }


def render_array(spec: JobSpec, split: str, chunk: ArrayChunk, python: str,
                 retry_errors: bool = False) -> str:
    source = str(spec.template_path() or "built-in sbatch_templates/array.sbatch")
    values = sbatch_values(spec, split, chunk, python, retry_errors)
    return render(load_template(spec), values, source)

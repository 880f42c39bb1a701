"""plan.json: making, reading and checking a run's plan (file effects at the edge)."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import layout, planner
from .atomic import atomic_write_json
from .errors import UsageError
from .manifest import Manifest, read_manifest
from .spec import JobSpec

PLAN_VERSION = 1


@dataclass(frozen=True)
class SplitPlan:
    name: str
    manifest: Path
    manifest_sha256: str
    items: int
    shards: tuple[tuple[int, int], ...]

    def bounds(self, shard: int) -> tuple[int, int]:
        if not 0 <= shard < len(self.shards):
            raise UsageError(
                f"split {self.name!r} has {len(self.shards)} shard(s); no shard {shard}"
            )
        return self.shards[shard]


@dataclass(frozen=True)
class Plan:
    data: dict[str, Any]

    @property
    def inputs_sha256(self) -> str:
        return str(self.data["inputs_sha256"])

    @property
    def splits(self) -> dict[str, SplitPlan]:
        return {
            name: SplitPlan(
                name=name,
                manifest=Path(s["manifest"]),
                manifest_sha256=s["manifest_sha256"],
                items=s["items"],
                shards=tuple((a, b) for a, b in s["shards"]),
            )
            for name, s in self.data["splits"].items()
        }

    def split(self, name: str) -> SplitPlan:
        splits = self.splits
        if name not in splits:
            raise UsageError(f"no split {name!r} in the plan; splits: {', '.join(splits)}")
        return splits[name]


def inputs_sha256(manifests: dict[str, Manifest]) -> str:
    """Hash of what decides which items exist: split names and manifest contents."""
    digest = hashlib.sha256()
    for name in sorted(manifests):
        digest.update(f"{name}\0{manifests[name].sha256}\0".encode())
    return digest.hexdigest()


def read_manifests(spec: JobSpec) -> dict[str, Manifest]:
    manifests = {}
    for name, path in spec.splits.items():
        try:
            manifests[name] = read_manifest(path, name)
        except UsageError as exc:
            raise UsageError(f"{spec.path}: [splits] {name}: {exc}") from None
    return manifests


def measured_items_per_s(run_dir: Path) -> list[float]:
    """Throughput recorded by finished shards (their _SUCCESS.json)."""
    rates = []
    for success in sorted((run_dir / "shards").glob("*/*/_SUCCESS.json")):
        try:
            stats = json.loads(success.read_text())["stats"]
        except (OSError, ValueError, KeyError):
            continue
        if stats.get("items_processed", 0) >= 10 and stats.get("items_per_s"):
            rates.append(float(stats["items_per_s"]))
    return rates


def make_plan(spec: JobSpec, manifests: dict[str, Manifest], measured: list[float]) -> Plan:
    """Build the plan (pure given its inputs)."""
    sizing = planner.Sizing(
        time_s=spec.slurm.time_s,
        target_fraction=spec.planning.target_fraction,
        concurrency=spec.processor.concurrency,
        max_concurrent=spec.slurm.max_concurrent,
        seconds_per_item=spec.planning.est_seconds_per_item,
        rate_limit_per_s=spec.processor.rate_limit_per_s,
    )
    observed = planner.measured_throughput(measured)
    throughput = observed if observed is not None else planner.per_task_throughput(sizing)
    cap = planner.max_items_per_shard(sizing.time_s, sizing.target_fraction, throughput)
    splits = {}
    for name, manifest in manifests.items():
        bounds = planner.shard_bounds(len(manifest), cap)
        largest = max((b - a for a, b in bounds), default=0)
        splits[name] = {
            "manifest": str(manifest.path),
            "manifest_sha256": manifest.sha256,
            "items": len(manifest),
            "shards": [list(b) for b in bounds],
            "items_per_shard": largest,
            "est_hours_per_shard": round(planner.est_hours(largest, throughput), 4),
        }
    return Plan(
        {
            "version": PLAN_VERSION,
            "job": spec.name,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "inputs_sha256": inputs_sha256(manifests),
            "sizing": {
                "time_s": sizing.time_s,
                "target_fraction": sizing.target_fraction,
                "concurrency": sizing.concurrency,
                "max_concurrent": sizing.max_concurrent,
                "rate_limit_per_s": sizing.rate_limit_per_s,
                "est_seconds_per_item": sizing.seconds_per_item,
                "throughput_per_task": throughput,
                "throughput_source": (
                    f"measured (median of {len(measured)} finished shard(s))"
                    if observed is not None
                    else "estimate (est_seconds_per_item)"
                ),
                "max_items_per_shard": cap,
            },
            "splits": splits,
        }
    )


def load_plan(run_dir: Path) -> Plan | None:
    path = layout.plan_path(run_dir)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: unreadable plan: {exc}") from None
    if data.get("version") != PLAN_VERSION:
        raise UsageError(f"{path}: plan version {data.get('version')!r} is not {PLAN_VERSION}")
    return Plan(data)


def require_plan(run_dir: Path) -> Plan:
    plan = load_plan(run_dir)
    if plan is None:
        raise UsageError(f"{layout.plan_path(run_dir)}: no plan yet; run `shardrun plan` first")
    return plan


def read_planned_manifest(split: SplitPlan) -> Manifest:
    """The split's manifest, refused if it changed since planning."""
    return read_manifest(split.manifest, split.name, planned_sha256=split.manifest_sha256)


def write_plan(run_dir: Path, plan: Plan) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(layout.plan_path(run_dir), plan.data)


def supersede(run_dir: Path) -> Path:
    """Move the old plan and its shards aside (nothing is deleted) before a forced re-plan."""
    target = layout.superseded_dir(run_dir) / time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    target.mkdir(parents=True, exist_ok=False)
    for name in ("plan.json", "shards", "merged", "events"):
        source = run_dir / name
        if source.exists():
            source.rename(target / name)
    return target


@dataclass(frozen=True)
class PlanOutcome:
    plan: Plan
    action: str  # "created" | "kept" | "replanned"
    superseded: Path | None = None


def ensure_plan(spec: JobSpec, force: bool = False) -> PlanOutcome:
    """Plan the job, keep an up-to-date plan, refuse a stale one unless ``force``."""
    manifests = read_manifests(spec)  # validates every manifest before anything is written
    existing = load_plan(spec.run_dir)
    if existing is not None and not force:
        if existing.inputs_sha256 == inputs_sha256(manifests):
            return PlanOutcome(existing, "kept")
        raise UsageError(
            f"{layout.plan_path(spec.run_dir)}: the manifests changed since this run was planned; "
            "re-planning would reassign items to shards. Use `shardrun plan --force` (the old "
            "plan and shards are moved to superseded/, not deleted)"
        )
    measured = measured_items_per_s(spec.run_dir)
    plan = make_plan(spec, manifests, measured)
    moved = supersede(spec.run_dir) if existing is not None else None
    write_plan(spec.run_dir, plan)
    return PlanOutcome(plan, "replanned" if existing is not None else "created", moved)

from __future__ import annotations

import itertools
import json

import pytest

from shardrun import planner
from shardrun.cli import main
from shardrun.planfile import ensure_plan
from shardrun.spec import load_spec


def test_throughput_is_bounded_by_latency_and_rate_share() -> None:
    sizing = planner.Sizing(time_s=21600, target_fraction=0.5, concurrency=4, max_concurrent=8,
                            seconds_per_item=6.6, rate_limit_per_s=15)
    # 4 in flight at 6.6 s = 0.606/s, below the 15/8 = 1.875/s share of the rate limit
    assert planner.per_task_throughput(sizing) == pytest.approx(4 / 6.6)
    fast = planner.Sizing(21600, 0.5, 64, 8, 0.5, 15)
    assert planner.per_task_throughput(fast) == pytest.approx(15 / 8)
    unlimited = planner.Sizing(21600, 0.5, 4, 8, 2.0, None)
    assert planner.per_task_throughput(unlimited) == pytest.approx(2.0)


def test_shard_size_for_the_lost_run() -> None:
    # 6 h, 50 %, 4/6.6 items/s: a shard may hold 6545 items, so 3272 items fit in one shard
    cap = planner.max_items_per_shard(21600, 0.5, 4 / 6.6)
    assert cap == 6545
    assert planner.shard_bounds(3272, cap) == [(0, 3272)]


@pytest.mark.parametrize(("n", "cap"), [(10, 3), (404, 100), (1000, 1000), (1, 5), (7, 1)])
def test_shards_are_balanced_contiguous_and_cover_everything(n: int, cap: int) -> None:
    bounds = planner.shard_bounds(n, cap)
    sizes = [b - a for a, b in bounds]
    assert max(sizes) <= cap and max(sizes) - min(sizes) <= 1
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    assert planner.shard_bounds(n, cap) == bounds  # deterministic


def test_empty_split_has_no_shards() -> None:
    assert planner.shard_bounds(0, 10) == []


def test_measured_throughput_is_the_median() -> None:
    assert planner.measured_throughput([]) is None
    assert planner.measured_throughput([1.0, 9.0, 2.0]) == 2.0


def test_plan_records_sizing_and_prints_per_split(make_job, capsys) -> None:
    # 0.5 x 600 s x (4 / 0.01 items/s) = 120000 >> items; force small shards with a slow estimate
    job = make_job({"train": 404, "val": 40}, {"planning": {"est_seconds_per_item": 12.0}})
    assert main(["plan", str(job)]) == 0
    out = capsys.readouterr().out
    plan = json.loads((job.parent / "run" / "plan.json").read_text())
    assert plan["sizing"]["max_items_per_shard"] == 100  # 0.5 * 600 * 4/12
    assert len(plan["splits"]["train"]["shards"]) == 5
    assert "train: 404 items -> 5 shard(s)" in out
    assert "h/shard" in out


def test_replan_refuses_changed_manifests_unless_forced(make_job, capsys) -> None:
    job = make_job({"train": 10})
    assert main(["plan", str(job)]) == 0
    assert main(["plan", str(job)]) == 0  # unchanged: kept
    assert "plan kept" in capsys.readouterr().out
    manifest = job.parent / "data" / "train.txt"
    manifest.write_text(manifest.read_text() + "new-item\n")
    assert main(["plan", str(job)]) == 2
    assert "changed" in capsys.readouterr().err
    events = job.parent / "run" / "events" / "train"
    events.mkdir(parents=True)
    (events / "00000.jsonl").write_text('{"t": 1, "kind": "start"}\n')
    assert main(["plan", str(job), "--force"]) == 0
    plan = json.loads((job.parent / "run" / "plan.json").read_text())
    assert plan["splits"]["train"]["items"] == 11
    assert list((job.parent / "run" / "superseded").glob("*/events/train/00000.jsonl"))
    superseded = list((job.parent / "run" / "superseded").glob("*/plan.json"))
    assert len(superseded) == 1  # the old plan was kept, not deleted
    assert not (job.parent / "run" / "events").exists()  # old shards' events went with them


def test_planner_uses_measured_throughput(make_job) -> None:
    job = make_job({"train": 50}, {"planning": {"est_seconds_per_item": 12.0}})
    spec = load_spec(job)
    shard = spec.run_dir / "shards" / "train" / "00000"
    shard.mkdir(parents=True)
    (shard / "_SUCCESS.json").write_text(json.dumps(
        {"ok": 50, "error": 0, "stats": {"items_processed": 50, "items_per_s": 0.05}}))
    plan = ensure_plan(spec, force=True).plan
    assert plan.data["sizing"]["throughput_source"].startswith("measured")
    assert plan.data["sizing"]["max_items_per_shard"] == 15  # 0.5 * 600 * 0.05


def test_the_example_job_sizes_as_its_comments_say() -> None:
    from pathlib import Path

    spec = load_spec(Path(__file__).parents[1] / "jobs" / "prebuilt_extraction.toml")
    sizing = planner.Sizing(spec.slurm.time_s, spec.planning.target_fraction,
                            spec.processor.concurrency, spec.slurm.max_concurrent,
                            spec.planning.est_seconds_per_item, spec.processor.rate_limit_per_s)
    throughput = planner.per_task_throughput(sizing)
    assert planner.max_items_per_shard(sizing.time_s, sizing.target_fraction, throughput) == 6545
    faster = planner.Sizing(21600, 0.5, 13, 8, 6.6, 15)
    assert planner.max_items_per_shard(21600, 0.5, planner.per_task_throughput(faster)) == 20250

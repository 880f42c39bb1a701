"""Parsers and renderers on output recorded from this project's real single-node cluster
(SLURM 22.05, tests/data/slurm/)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from shardrun.backends.slurm import JobIndex
from shardrun.errors import SchedulerError, UsageError
from shardrun.sbatch import ArrayChunk, chunk_shards, render, render_array
from shardrun.scheduler import Completed, Scheduler
from shardrun.slurm_parse import (
    parse_config_value,
    parse_end_time,
    parse_sacct,
    parse_sbatch_parsable,
    parse_squeue,
)
from shardrun.spec import load_spec

DATA = Path(__file__).parent / "data" / "slurm"


def recorded(name: str) -> str:
    return (DATA / name).read_text()


def test_sbatch_parsable() -> None:
    assert parse_sbatch_parsable(recorded("sbatch_parsable.txt")) == "14"
    assert parse_sbatch_parsable("123;cluster\n") == "123"
    with pytest.raises(SchedulerError, match="no job id"):
        parse_sbatch_parsable("sbatch: error: Batch job submission failed\n")


def test_squeue_expanded_array() -> None:
    entries = parse_squeue(recorded("squeue_array_pending_running.txt"))
    assert [(e.array_job_id, e.task_id, e.state) for e in entries][:2] == [
        ("14", 0, "PENDING"), ("14", 1, "PENDING")]
    assert len(entries) == 5
    requeued = parse_squeue(recorded("squeue_after_requeue.txt"))
    assert requeued[0].reason == "BeginTime" and requeued[0].task_id == 4
    with pytest.raises(SchedulerError, match="unexpected squeue line"):
        parse_squeue("garbage\n")


def test_sacct_states() -> None:
    entries = {(e.array_job_id, e.task_id): e for e in parse_sacct(recorded("sacct_mixed.txt"))}
    assert entries[("14", 1)].state == "FAILED" and entries[("14", 1)].exit_code == "3:0"
    assert entries[("14", 2)].state == "CANCELLED"  # "CANCELLED by 0"
    assert entries[("14", 4)].state == "PENDING"
    killed = parse_sacct(recorded("sacct_killed.txt"))
    assert killed[0].task_id is None and killed[0].state == "CANCELLED"
    assert parse_sacct("12_[3-5]|12|PENDING|0:0\n") == []  # pending ranges: squeue's business


def test_config_and_end_time() -> None:
    config = recorded("scontrol_show_config.txt")
    assert parse_config_value(config, "MaxArraySize") == "1001"
    assert parse_config_value(config, "NoSuchKey") is None
    assert parse_end_time("2026-12-04T15:24:15\n") is not None
    assert parse_end_time("N/A\n") is None


def test_job_index_states_queue_outranks_accounting() -> None:
    index = JobIndex.from_records([
        {"backend": "slurm", "split": "train", "job_id": "14", "offset": 0,
         "indices": [0, 1, 2, 3, 4]},
    ])
    states = index.states(parse_squeue(recorded("squeue_after_requeue.txt")),
                          parse_sacct(recorded("sacct_mixed.txt")))
    assert states[("train", 1)] == "failed"
    assert states[("train", 2)] == "cancelled"
    assert states[("train", 0)] == "completed"
    assert states[("train", 4)] == "requeued"  # pending on BeginTime after a requeue


def test_job_index_maps_offsets_and_submitit_shard_lists() -> None:
    index = JobIndex.from_records([
        {"backend": "slurm", "split": "s", "job_id": "7", "offset": 1001, "indices": [0, 2]},
        {"backend": "submitit", "split": "v", "job_id": "8", "indices": [0, 1],
         "shards": [3, 9]},
        {"backend": "local", "split": "s", "job_id": "1001", "indices": [0]},
    ])
    assert index.by_task == {("7", 0): ("s", 1001), ("7", 2): ("s", 1003),
                             ("8", 0): ("v", 3), ("8", 1): ("v", 9)}


@pytest.mark.parametrize(("shards", "size", "expected"), [
    ([0, 1, 2, 3, 4], 1001, [(0, (0, 1, 2, 3, 4))]),
    (list(range(7)), 3, [(0, (0, 1, 2)), (3, (0, 1, 2)), (6, (0,))]),
    ([2, 5, 6, 11], 4, [(2, (0, 3)), (6, (0,)), (11, (0,))]),
])
def test_arrays_split_at_max_array_size(shards, size, expected) -> None:
    chunks = chunk_shards(shards, size)
    assert [(c.offset, c.indices) for c in chunks] == expected
    assert sorted(s for c in chunks for s in c.shards) == sorted(shards)
    assert all(max(c.indices) < size for c in chunks)


def test_three_thousand_shards_need_three_arrays() -> None:
    chunks = chunk_shards(list(range(3000)), 1001)
    assert [len(c.indices) for c in chunks] == [1001, 1001, 998]
    assert [c.offset for c in chunks] == [0, 1001, 2002]


def test_rendered_script_quotes_everything(make_job, tmp_path) -> None:
    job = make_job({"train": 5}, {"slurm": {"partition": "debug", "extra": ["--account=a b"],
                                            "time": "1-00:00:00", "signal_grace_s": 300}},
                   name="evil; rm -rf ~")
    spec = load_spec(job)
    script = render_array(spec, "train", ArrayChunk(1001, (0, 1, 2, 5)), "/opt/py thon/bin/python")
    lines = script.splitlines()
    assert "#SBATCH --array=0-2,5%4" in lines
    assert "#SBATCH --time=1-00:00:00" in lines
    assert "#SBATCH --signal=B:USR1@300" in lines
    assert "#SBATCH --requeue" in lines and "#SBATCH --open-mode=append" in lines
    assert "#SBATCH --job-name='evil; rm -rf ~-train'" in lines
    assert "#SBATCH --partition=debug" in lines and "#SBATCH '--account=a b'" in lines
    assert f"#SBATCH --output={spec.run_dir}/logs/train/%A_%a.log" in lines
    exec_line = next(line for line in lines if line.startswith("exec "))
    assert shlex.split(exec_line)[1:] == ["/opt/py thon/bin/python", "-m", "shardrun",
                                          "run-task", str(job), "--split", "train",
                                          "--shard-offset", "1001"]
    assert "EXTRACTION_API_KEY" not in script


def test_user_template_and_unknown_placeholder(make_job, tmp_path) -> None:
    template = tmp_path / "mine.sbatch"
    template.write_text("#!/bin/bash\n#SBATCH --array={{ array }}\n#SBATCH --qos=x\n"
                        "exec {{ command }}\n")
    job = make_job({"train": 5}, {"slurm": {"template": str(template)}})
    script = render_array(load_spec(job), "train", ArrayChunk(0, (0,)), "python")
    assert "#SBATCH --qos=x" in script and "run-task" in script
    with pytest.raises(UsageError, match=r"unknown placeholder \{\{ nope \}\}"):
        render("{{ nope }}", {"a": "1"})


def test_scheduler_errors_carry_the_command_and_raw_output() -> None:
    def runner(argv, stdin, timeout):
        return Completed(1, "", "sbatch: error: invalid partition specified: nope")

    scheduler = Scheduler(runner=runner)
    with pytest.raises(SchedulerError, match="invalid partition specified: nope"):
        scheduler.sbatch("#!/bin/bash\n")
    assert scheduler.calls["sbatch"] == 1


def test_squeue_is_one_call_filtered_to_the_run() -> None:
    def runner(argv, stdin, timeout):
        assert argv[:4] == ["squeue", "-h", "-r", "--me"]
        return Completed(0, recorded("squeue_array_pending_running.txt")
                         + "99|0|99_0|RUNNING|None|N/A\n", "")

    scheduler = Scheduler(runner=runner)
    entries = scheduler.squeue(["14"])
    assert {e.array_job_id for e in entries} == {"14"} and len(entries) == 5
    assert scheduler.calls["squeue"] == 1

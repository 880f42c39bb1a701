"""The submitit backend: the same shards as a submitit job array, for Python users.

Each array task runs a checkpointable callable that runs `shardrun run-task`, so it resumes
from the Parquet parts like any other task; the run directory stays the same, so status,
requeue and merge work on it. submitit's own signal (USR2) also stops the task gracefully.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any

import submitit

from .. import layout
from ..spec import JobSpec
from ..submissions import append_submission, array_spec
from .slurm import SlurmBackend

log = logging.getLogger("shardrun")


class ShardTask(submitit.helpers.Checkpointable):  # type: ignore[misc]
    """Runs one shard; on a timeout or preemption submitit resubmits it, and it resumes."""

    def __call__(self, job_file: str, split: str, shard: int, retry_errors: bool) -> int:
        from ..cli import main

        os.environ["SHARDRUN_BACKEND"] = "submitit"
        argv = ["run-task", job_file, "--split", split, "--shard", str(shard)]
        return main([*argv, "--retry-errors"] if retry_errors else argv)


def executor_for(spec: JobSpec, split: str) -> submitit.AutoExecutor:
    slurm = spec.slurm
    executor = submitit.AutoExecutor(folder=layout.log_dir(spec.run_dir, split) / "submitit",
                                     cluster="slurm")
    extra: dict[str, Any] = {"requeue": True, "open-mode": "append"}
    for flag in slurm.extra:
        key, _, value = flag.lstrip("-").partition("=")
        extra[key] = value or True
    executor.update_parameters(
        name=f"{spec.name}-{split}",
        timeout_min=max(1, math.ceil(slurm.time_s / 60)),
        slurm_signal_delay_s=slurm.signal_grace_s,
        slurm_array_parallelism=slurm.max_concurrent,
        cpus_per_task=slurm.cpus_per_task,
        slurm_additional_parameters=extra,
        **({"slurm_partition": slurm.partition} if slurm.partition else {}),
        **({"slurm_mem": slurm.mem} if slurm.mem else {}),
    )
    return executor


def submit_with_submitit(spec: JobSpec, selection: dict[str, list[int]], retry_errors: bool,
                         wait: bool) -> None:
    for split, shards in selection.items():
        if not shards:
            continue
        executor = executor_for(spec, split)
        n = len(shards)
        task = ShardTask()  # type: ignore[no-untyped-call]
        jobs = executor.map_array(task, [str(spec.path)] * n, [split] * n, shards,
                                  [retry_errors] * n)
        array_job = jobs[0].job_id.split("_")[0]
        append_submission(spec.run_dir, {
            "backend": "submitit", "split": split, "job_id": array_job,
            "indices": list(range(n)), "shards": shards,
            "array": array_spec(list(range(n)), spec.slurm.max_concurrent),
        })
        log.info("submitted %s through submitit: job %s, %d task(s)", split, array_job, n)
    if wait:
        SlurmBackend(spec).wait()

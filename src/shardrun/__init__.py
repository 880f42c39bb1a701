"""shardrun: per-item batch work as SLURM job arrays that survive the wall clock."""

from __future__ import annotations

from .errors import SchedulerError, UsageError
from .planfile import Plan, ensure_plan
from .processor import ItemError, Processor
from .spec import JobSpec, load_spec

__version__ = "0.1.0"

__all__ = [
    "ItemError",
    "JobSpec",
    "Plan",
    "Processor",
    "SchedulerError",
    "UsageError",
    "__version__",
    "ensure_plan",
    "load_spec",
]

"""Run every benchmark (`make bench`); each writes its section of bench/RESULTS.md."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
BENCHMARKS = ["bench_core.py", "bench_throughput.py", "bench_alternatives.py"]

if __name__ == "__main__":
    extra = sys.argv[1:]  # e.g. --quick
    for name in BENCHMARKS:
        print(f"== {name}", flush=True)
        subprocess.run([sys.executable, str(HERE / name), *extra], check=True)

"""`pip install .` must ship the sbatch template inside the wheel, not only in the repo."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contains_template_and_py_typed(tmp_path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    str(ROOT), "-w", str(tmp_path)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("shardrun-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "shardrun/sbatch_templates/array.sbatch" in names
    assert "shardrun/py.typed" in names
    assert any(n.endswith("entry_points.txt") for n in names)


def test_top_level_templates_folder_is_the_shipped_one() -> None:
    assert (ROOT / "sbatch_templates" / "array.sbatch").read_text() == (
        ROOT / "src" / "shardrun" / "sbatch_templates" / "array.sbatch").read_text()

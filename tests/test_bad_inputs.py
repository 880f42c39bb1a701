"""The bad input corpus (tests/bad_inputs/): exit 2, the problem named, nothing created."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from shardrun.cli import main
from shardrun.sbatch import ArrayChunk, render_array
from shardrun.spec import load_spec

CORPUS = Path(__file__).parent / "bad_inputs"
CASES = sorted(p.name for p in CORPUS.glob("*.toml"))


def expected(spec: Path) -> str:
    first = spec.read_text().splitlines()[0]
    assert first.startswith("# expect: "), spec
    return first.removeprefix("# expect: ")


@pytest.mark.parametrize("name", CASES)
def test_bad_spec_is_refused_and_nothing_is_created(name, tmp_path, capsys) -> None:
    work = Path(shutil.copytree(CORPUS, tmp_path / "corpus"))
    job = work / name
    before = sorted(p.relative_to(work) for p in work.rglob("*"))
    commands = [["submit", str(job), "--backend", "slurm", "--dry-run"]]
    if name != "bad_template.toml":  # a template is only read when rendering
        commands.append(["plan", str(job)])
    for argv in commands:
        assert main(argv) == 2, argv
        message = capsys.readouterr().err
        assert expected(job) in message, message
        assert name in message, message
    assert sorted(p.relative_to(work) for p in work.rglob("*")) == before


def test_corpus_is_not_empty() -> None:
    assert len(CASES) >= 20


def test_empty_split_is_handled_not_refused(make_job, capsys) -> None:
    job = make_job({"a": 3, "empty": 0})
    assert main(["plan", str(job)]) == 0
    assert "empty: 0 items -> 0 shards" in capsys.readouterr().out


WEIRD = "we ird $(touch pwned);'x`id`&\"q\""


def test_paths_with_spaces_and_shell_metacharacters_cannot_inject(tmp_path) -> None:
    from conftest import write_job

    root = tmp_path / WEIRD
    job = write_job(root, {"train": 3}, name=f"n{WEIRD}")
    spec = load_spec(job)
    script = render_array(spec, "train", ArrayChunk(0, (0, 1)), f"/opt/{WEIRD}/python")
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0
    # the exec line, as bash would split it: exactly our argv, nothing run
    exec_line = next(line for line in script.splitlines() if line.startswith("exec "))
    argv = subprocess.run(["bash", "-c", f"printf '%s\\n' {exec_line.removeprefix('exec ')}"],
                          capture_output=True, text=True, cwd=tmp_path, check=True)
    assert argv.stdout.splitlines() == [f"/opt/{WEIRD}/python", "-m", "shardrun", "run-task",
                                        str(job), "--split", "train", "--shard-offset", "0"]
    assert not (tmp_path / "pwned").exists()

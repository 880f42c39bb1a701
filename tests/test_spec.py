"""Bad specs exit 2 naming file, key and value, and create nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from shardrun.cli import main
from shardrun.errors import UsageError
from shardrun.spec import load_spec


def test_valid_spec_loads(make_job) -> None:
    spec = load_spec(make_job({"train": 5}))
    assert spec.processor.concurrency == 4
    assert spec.slurm.time_s == 600
    assert spec.run_dir == spec.path.parent / "run"
    assert spec.splits["train"].name == "train.txt"


@pytest.mark.parametrize(("sections", "named"), [
    ({"processor": {"concurency": 4}}, "concurency"),
    ({"processor": {"concurrency": -1}}, "concurrency = -1"),
    ({"processor": {"concurrency": 0}}, "concurrency = 0"),
    ({"processor": {"concurrency": "4"}}, "concurrency = '4'"),
    ({"processor": {"concurrency": True}}, "concurrency = True"),
    ({"checkpoint": {"every_items": 0}}, "every_items = 0"),
    ({"checkpoint": {"every_seconds": -1.5}}, "every_seconds = -1.5"),
    ({"slurm": {"time": "6 hours"}}, "time = '6 hours'"),
    ({"slurm": {"signal": "USR9"}}, "signal = 'USR9'"),
    ({"slurm": {"signal_grace_s": 600}}, "signal_grace_s = 600"),
    ({"slurm": {"extra": ["--account=x", 3]}}, "extra"),
    ({"planning": {"target_fraction": 1.5}}, "target_fraction = 1.5"),
    ({"processor": {"kind": "magic"}}, "kind = 'magic'"),
    ({"processor": {"function": "no_colon"}}, "function = 'no_colon'"),
    ({"bogus": {"x": 1}}, "bogus"),
])
def test_bad_values_exit_2_and_name_the_key(make_job, capsys, sections, named) -> None:
    job = make_job({"train": 5}, sections)
    assert main(["plan", str(job)]) == 2
    message = capsys.readouterr().err
    assert named in message
    assert str(job) in message
    assert not (job.parent / "run").exists()


def test_malformed_toml(tmp_path: Path, capsys) -> None:
    job = tmp_path / "job.toml"
    job.write_text('name = "x\nrun_dir = 3\n')
    assert main(["plan", str(job)]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_missing_spec_file(tmp_path: Path, capsys) -> None:
    assert main(["plan", str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml" in capsys.readouterr().err


def test_missing_manifest_exit_2_nothing_created(make_job, capsys) -> None:
    job = make_job({"train": 5, "val": 3})
    (job.parent / "data" / "val.txt").unlink()
    assert main(["plan", str(job)]) == 2
    assert "val.txt" in capsys.readouterr().err
    assert not (job.parent / "run").exists()


def test_duplicate_ids_exit_2(make_job, capsys) -> None:
    job = make_job({"train": 5})
    manifest = job.parent / "data" / "train.txt"
    manifest.write_text(manifest.read_text() + "train-item-00002\n")
    assert main(["submit", str(job)]) == 2
    err = capsys.readouterr().err
    assert "duplicate" in err and "train-item-00002" in err and "train.txt" in err
    assert not (job.parent / "run").exists()


def test_unknown_top_level_key_lists_valid_ones(tmp_path: Path) -> None:
    job = tmp_path / "job.toml"
    job.write_text('name = "x"\nrun_dir = "r"\nsplitz = 1\n[splits]\na = "a.txt"\n'
                   '[processor]\nkind = "python"\nfunction = "m:f"\n')
    with pytest.raises(UsageError, match="splitz.*valid keys: name, run_dir, splits"):
        load_spec(job)


def test_bad_split_name(tmp_path: Path) -> None:
    job = tmp_path / "job.toml"
    job.write_text('name = "x"\nrun_dir = "r"\n[splits]\n"../evil" = "a.txt"\n'
                   '[processor]\nkind = "python"\nfunction = "m:f"\n')
    with pytest.raises(UsageError, match="split names"):
        load_spec(job)


def test_example_jobs_are_valid() -> None:
    jobs = sorted((Path(__file__).parents[1] / "jobs").glob("*.toml"))
    assert jobs
    for job in jobs:
        load_spec(job)

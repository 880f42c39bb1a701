from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shardrun.cli import main
from shardrun.errors import UsageError
from shardrun.manifest import read_manifest


def test_txt_ids_are_paths_relative_to_the_manifest(tmp_path: Path) -> None:
    (tmp_path / "m.txt").write_text("a/1.png\n\n/abs/2.png\n")
    m = read_manifest(tmp_path / "m.txt", "s")
    assert m.ids.to_pylist() == ["a/1.png", "/abs/2.png"]
    assert m.items(0, 2)[0]["path"] == str(tmp_path / "a/1.png")
    assert m.items(0, 2)[1]["path"] == "/abs/2.png"


def test_csv_keeps_ids_as_text_and_extra_columns(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("id,label,path\n007,cat,x.png\n008,dog,\n")
    items = read_manifest(tmp_path / "m.csv", "s").items(0, 2)
    assert items[0] == {"id": "007", "label": "cat", "path": str(tmp_path / "x.png")}
    assert items[1]["id"] == "008"


def test_jsonl_and_parquet(tmp_path: Path) -> None:
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps({"id": i, "n": i}) for i in range(3)))
    assert read_manifest(tmp_path / "m.jsonl", "s").ids.to_pylist() == ["0", "1", "2"]
    pq.write_table(pa.table({"id": ["x", "y"], "path": ["p", None]}), tmp_path / "m.parquet")
    items = read_manifest(tmp_path / "m.parquet", "s").items(0, 2)
    assert items[1] == {"id": "y", "path": None}


@pytest.mark.parametrize(("name", "content", "match"), [
    ("m.csv", "name,path\na,b\n", "no 'id' column"),
    ("m.csv", "id\na\nb\na\n", "duplicate id.*'a'"),
    ("m.jsonl", '{"id": "a\\nb"}\n', "newline"),
    ("m.jsonl", '{"id": ""}\n', "empty id"),
    ("m.xlsx", "id\n", "unsupported manifest type"),
    ("m.csv", "id,x\n\"unterminated\n", "cannot read manifest"),
])
def test_bad_manifests(tmp_path: Path, name: str, content: str, match: str) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(UsageError, match=match):
        read_manifest(tmp_path / name, "s")


def test_empty_split_plans_zero_shards_and_says_so(make_job, capsys) -> None:
    job = make_job({"train": 10, "empty": 0})
    assert main(["plan", str(job)]) == 0
    out = capsys.readouterr().out
    assert "empty: 0 items -> 0 shards" in out
    plan = json.loads((job.parent / "run" / "plan.json").read_text())
    assert plan["splits"]["empty"]["shards"] == []


@pytest.mark.parametrize("suffix", [".txt", ".csv", ".jsonl", ".parquet"])
def test_streamed_slices_match_the_manifest(tmp_path: Path, suffix: str, monkeypatch) -> None:
    """Merge streams the planned ids a range at a time; they must be exactly the ranges."""
    from shardrun import manifest as manifest_module
    from shardrun.manifest import file_sha256, planned_id_slices

    ids = [f"doc-{i:03d}" for i in range(23)]
    path = tmp_path / f"m{suffix}"
    if suffix == ".txt":
        path.write_text("\n".join(ids[:5]) + "\n\n" + "\n".join(ids[5:]) + "\n")
    elif suffix == ".csv":
        path.write_text("id,x\n" + "".join(f"{i},1\n" for i in ids))
    elif suffix == ".jsonl":
        path.write_text("".join(json.dumps({"id": i}) + "\n" for i in ids))
    else:
        pq.write_table(pa.table({"id": ids}), path)
    monkeypatch.setattr(manifest_module, "BATCH", 4)  # many batches, ranges across them
    bounds = [(0, 7), (7, 8), (8, 16), (16, 23)]
    whole = read_manifest(path, "s").ids
    slices = list(planned_id_slices(path, "s", file_sha256(path), bounds))
    assert [s.to_pylist() for s in slices] == [whole.slice(a, b - a).to_pylist()
                                               for a, b in bounds]
    assert sum(len(s) for s in slices) == 23
    with pytest.raises(UsageError, match="changed since planning"):
        next(planned_id_slices(path, "s", "0" * 64, bounds))

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

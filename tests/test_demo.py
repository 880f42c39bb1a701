"""`shardrun demo` (what `make demo` runs) shows a signal, a resume and nothing lost."""

from __future__ import annotations

import os

import pyarrow.parquet as pq

from shardrun import layout
from shardrun.cli import main
from shardrun.demo import SPLITS


def test_demo_end_to_end(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("EXTRACTION_API_KEY", "restored-after-the-test")
    root = tmp_path / "demo"
    assert main(["demo", "--dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert "lost: 0" in out
    assert "restarted and resumed: 0" not in out
    assert "429 + Retry-After" in out
    key = os.environ["EXTRACTION_API_KEY"].encode()  # the demo's throwaway key
    for path in root.rglob("*"):
        if path.is_file():
            assert key not in path.read_bytes(), path
    for split, count in SPLITS.items():
        ids = pq.read_table(layout.merged_path(root / "run", split)).column("item_id").to_pylist()
        assert len(ids) == count == len(set(ids))


def test_demo_refuses_a_folder_it_did_not_make(tmp_path, capsys) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "precious.txt").write_text("keep")
    assert main(["demo", "--dir", str(tmp_path / "mine")]) == 2
    assert (tmp_path / "mine" / "precious.txt").read_text() == "keep"

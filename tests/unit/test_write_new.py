"""`write_new`: a receipt never overwrites an earlier one of the same name."""

from __future__ import annotations

from pathlib import Path

from psop_hub.adapters.atomic import write_new


def test_each_write_takes_the_next_free_name_and_leaves_the_earlier_ones(tmp_path: Path) -> None:
    written = [write_new(tmp_path / "receipts", "maksut.csv", f"{n}".encode()) for n in range(3)]
    assert [p.name for p in written] == [
        "maksut.csv.receipt.json",
        "maksut.csv.2.receipt.json",
        "maksut.csv.3.receipt.json",
    ]
    assert [p.read_text() for p in written] == ["0", "1", "2"]
    assert sorted(p.name for p in (tmp_path / "receipts").iterdir()) == sorted(p.name for p in written)


def test_a_name_taken_by_another_file_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "a.xml.receipt.json").write_text("earlier")
    (tmp_path / "a.xml.2.receipt.json").write_text("earlier too")
    assert write_new(tmp_path, "a.xml", b"new").name == "a.xml.3.receipt.json"
    assert (tmp_path / "a.xml.receipt.json").read_text() == "earlier"

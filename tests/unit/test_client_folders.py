"""`client_folders`: `hub clients add` makes a sender's file-drop folders, and only plain names."""

from __future__ import annotations

from pathlib import Path

import pytest

from psop_hub.adapters.filedrop import client_folders


def test_the_inbox_and_receipts_folders_are_made(tmp_path: Path) -> None:
    made = client_folders(tmp_path, "county-apotti")
    assert made == [tmp_path / "inbox" / "county-apotti", tmp_path / "outbox" / "county-apotti" / "receipts"]
    assert all(p.is_dir() for p in made)
    assert client_folders(tmp_path, "county-apotti") == made  # again: nothing breaks


@pytest.mark.parametrize("name", ["../escape", "a/b", ".hidden", "..", "", "nul\x00", "x" * 101])
def test_a_name_that_is_not_one_plain_folder_name_makes_nothing(tmp_path: Path, name: str) -> None:
    assert client_folders(tmp_path / "data", name) is None
    assert not (tmp_path / "data").exists()

"""A started process moves what it holds out of the collector's sight, and collects the rest."""

from __future__ import annotations

import gc

from psop_hub.processes import started_up


def test_started_up_freezes_what_the_process_holds() -> None:
    gc.unfreeze()
    held = [object() for _ in range(1000)]  # noqa: F841 (alive across the freeze)
    try:
        started_up()
        assert gc.get_freeze_count() >= 1000
        assert gc.get_count()[0] < 100  # collected just before: the young generation is empty
    finally:
        gc.unfreeze()

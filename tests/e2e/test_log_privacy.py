"""No HETU reaches the hub's log, in any spelling the contract accepts: file names, ids, paths."""

from __future__ import annotations

import time
from urllib.parse import quote

from tests.e2e.conftest import Hub
from tests.e2e.test_filedrop import batch, drop, granted, receipt_of
from tests.messages import HETU, ORGANISER, uid

SPELLINGS = [HETU, HETU.lower(), HETU[:-1] + HETU[-1].lower(), "010190y123m", "150621A123W"]


def test_hetus_in_file_names_ids_and_paths_are_masked_in_the_log(hub: Hub) -> None:
    receipts = []
    for n, spelling in enumerate(SPELLINGS):
        receipts.append(drop(hub, "county", f"paatos_{spelling}.xml", batch(granted(uid("LOG")))))
        receipts.append(drop(hub, "county", f"rikki_{spelling}_{n}.xml", b"<not-closed>"))
    for receipt in receipts:
        receipt_of(receipt)
    with hub.client("county") as county:
        for spelling in SPELLINGS:
            county.get(f"/api/v1/vouchers/{ORGANISER}/{quote(spelling)}")
    time.sleep(1)  # let the processes flush their lines
    log = hub.log.read_text(encoding="utf-8", errors="replace")
    assert "paatos_131052-****.xml" in log, log[-3000:]  # the file lines are there, masked
    found = [s for s in {*SPELLINGS, *(s.upper() for s in SPELLINGS)} if s in log]
    assert not found, found

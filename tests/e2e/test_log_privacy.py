"""No HETU reaches the hub's log, in any spelling the contract accepts: file names, ids, paths, and
end-to-end traffic over REST, SOAP and the file drop with a HETU of every century sign
(`+`, `-`, `A`-`F`, `Y`-`U`), upper and lower case, valid and refused."""

from __future__ import annotations

import time
from urllib.parse import quote

from tests.e2e import test_soap as soap
from tests.e2e.conftest import Hub, wait_for_status
from tests.e2e.test_filedrop import batch, decision, drop, granted, receipt_of
from tests.messages import HETU, ORGANISER, uid
from tests.messages import granted as rest_granted

SPELLINGS = [HETU, HETU.lower(), HETU[:-1] + HETU[-1].lower(), "010190y123m", "150621A123W"]
CHECK_CHARACTERS = "0123456789ABCDEFHJKLMNPRSTUVWXY"
# A birth date of the right century for each sign the contract accepts (DOMAIN.md).
CENTURIES = {"+": "010190", "-": "131052", "Y": "010190", "X": "020290", "W": "030390", "V": "040490",
             "U": "050590", "A": "010120", "B": "020220", "C": "030320", "D": "040420", "E": "050520",
             "F": "060620"}  # fmt: skip


def hetu_of(ddmmyy: str, sign: str, individual: str) -> str:
    return f"{ddmmyy}{sign}{individual}{CHECK_CHARACTERS[int(ddmmyy + individual) % 31]}"


def every_spelling() -> list[str]:
    """One valid HETU per century sign, upper case, lower case, and with a wrong check character."""
    hetus = []
    for n, (sign, ddmmyy) in enumerate(CENTURIES.items()):
        valid = hetu_of(ddmmyy, sign, f"{200 + n:03d}")
        wrong = valid[:-1] + ("1" if valid[-1] != "1" else "2")
        hetus += [valid, valid.lower(), wrong]
    return hetus


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


def file_record(number: str, hetu: str) -> str:
    return decision(
        "GRANTED",
        number,
        DecisionDate="2026-11-01",
        Client=f"<v:Hetu>{hetu}</v:Hetu><v:HomeMunicipality>853</v:HomeMunicipality>",
        Service="<v:Code>KH01</v:Code><v:Name>Kotihoito</v:Name>",
        Unit="hour",
        UnitValue="25.00",
        Quantity="10",
        ValidFrom="2026-11-01",
        ValidTo="2027-10-31",
    )


def test_every_spelling_over_every_transport_leaves_no_hetu_in_any_log(hub: Hub) -> None:
    hetus = every_spelling()
    client = soap.soap_client(hub, "county")
    applied = []
    with hub.client("county") as county, hub.client("admin") as admin:
        for hetu in hetus:
            # REST: the HETU in its field, in the message id, the voucher number and a path.
            raw = rest_granted(f"V-{hetu}-{uid('L')}")
            raw["payload"]["client"]["hetu"] = hetu
            raw["message_id"] = f"paatos-{hetu}-{uid('L')}"
            answer = county.post("/api/v1/messages", json=raw)
            assert answer.status_code in (202, 422), answer.text
            if answer.status_code == 202:
                applied.append(answer.json()["hub_id"])
            county.get(f"/api/v1/messages/{quote(hetu)}")
            county.get(f"/api/v1/orders/{ORGANISER}/{quote(hetu)}")
            # SOAP, hand-written (zeep would not send a HETU of the wrong shape) and through zeep.
            fields = soap.granted(f"S-{hetu}-{uid('L')}", message_id=f"s-{hetu}-{uid('L')}")
            fields["Client"] = {"Hetu": hetu, "HomeMunicipality": "091"}
            soap.post(hub, soap.decision_envelope(fields, soap.as_county(hub)))
            try:
                soap.submit(
                    client, soap.granted(f"Z-{uid('L')}", Client={"Hetu": hetu, "HomeMunicipality": "091"})
                )
            except soap.Fault:
                pass  # the wrong check characters: a Client fault (its text is checked in test_soap)
        # The file drop: one batch with every spelling, and a CSV whose ids carry them.
        records = [file_record(f"F-{uid('L')}", hetu) for hetu in hetus]
        receipt = receipt_of(drop(hub, "county", f"sukupolvet_{hetus[0]}.xml", batch(*records)))
        assert receipt["accepted"] == len(hetus) * 2 // 3, receipt
        header = "event_id;organiser;voucher_number;order_number;service_date;quantity;unit;price"
        rows = [f"ev-{hetu};{ORGANISER};V-{hetu};;03.11.2026;1;hour;" for hetu in hetus[:6]]
        receipt_of(drop(hub, "provider", f"toteumat_{hetus[1]}.csv", "\n".join([header, *rows]).encode()))
        for hub_id in applied:
            wait_for_status(county, hub_id, {"applied", "rejected", "failed"})
        # An admin reads one with the HETU revealed (audited): the answer has it, the log must not.
        shown = admin.get(
            f"/api/v1/admin/messages/{applied[0]}", params={"reveal": "true", "reason": "log test"}
        )
        assert shown.status_code == 200 and shown.json()["payload"]["client"]["hetu"] == hetus[0].upper()
    time.sleep(2)  # let every process flush its lines
    log = hub.log.read_text(encoding="utf-8", errors="replace")
    assert "-****" in log  # the lines that named them are there, masked
    # As sent, in either case, and as a URL carries it (`+` as `%2B`).
    spellings = {
        f for hetu in hetus for form in (hetu, hetu.upper(), hetu.lower()) for f in (form, quote(form))
    }
    found = sorted(s for s in spellings if s in log)
    assert not found, found

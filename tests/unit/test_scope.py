"""Who may send what: systems for their organiser, providers as themselves, admins never."""

from __future__ import annotations

import pytest

from psop_hub.hub.errors import NotAllowed
from psop_hub.hub.senders import Sender, check_may_send, may_read, may_read_message

SYSTEM = Sender("county", "system", ("2077474-0",), None)
PROVIDER = Sender("care-oy", "provider", (), "1572860-0")
ADMIN = Sender("ops", "admin", (), None)


@pytest.mark.parametrize(
    ("sender", "type_", "organiser", "provider"),
    [
        (SYSTEM, "voucher.granted", "2077474-0", None),
        (SYSTEM, "voucher.assigned", "2077474-0", "1572860-0"),
        (SYSTEM, "order.placed", "2077474-0", "1572860-0"),
        (SYSTEM, "payment.confirmed", None, None),
        (SYSTEM, "provider.approved", "2077474-0", "1572860-0"),
        (PROVIDER, "voucher.assigned", "2077474-0", "1572860-0"),
        (PROVIDER, "delivery.reported", "2077474-0", "1572860-0"),
        (PROVIDER, "delivery.cancelled", None, "1572860-0"),
    ],
)
def test_allowed(sender: Sender, type_: str, organiser: str | None, provider: str | None) -> None:
    check_may_send(sender, type_, organiser, provider)


@pytest.mark.parametrize(
    ("sender", "type_", "organiser", "provider", "words"),
    [
        (SYSTEM, "voucher.granted", "0201256-6", None, "organiser 2077474-0"),
        (SYSTEM, "delivery.reported", "2077474-0", "1572860-0", "may not send delivery.reported"),
        (PROVIDER, "voucher.granted", "2077474-0", None, "may not send voucher.granted"),
        (PROVIDER, "provider.approved", "2077474-0", "1572860-0", "may not send provider.approved"),
        (SYSTEM, "provider.approved", "0201256-6", "1572860-0", "organiser 2077474-0"),
        (PROVIDER, "delivery.reported", "2077474-0", "0116297-6", "as provider 1572860-0"),
        (ADMIN, "voucher.granted", "2077474-0", None, "admins"),
    ],
)
def test_refused(sender: Sender, type_: str, organiser: str | None, provider: str | None, words: str) -> None:
    with pytest.raises(NotAllowed, match=words):
        check_may_send(sender, type_, organiser, provider)


# --- who may read: every cell of INTERFACES §3's "who" column ---------------------------------

OTHER_SYSTEM = Sender("other-county", "system", ("0201256-6",), None)
OTHER_PROVIDER = Sender("other-oy", "provider", (), "0116297-6")
ORG, PROV = "2077474-0", "1572860-0"


@pytest.mark.parametrize(
    ("sender", "organiser", "provider", "allowed"),
    [
        (SYSTEM, ORG, PROV, True),  # the organiser's system
        (SYSTEM, ORG, None, True),  # an unassigned voucher of its organiser
        (OTHER_SYSTEM, ORG, PROV, False),  # another organiser's system
        (OTHER_SYSTEM, ORG, None, False),
        (PROVIDER, ORG, PROV, True),  # the record's provider
        (PROVIDER, ORG, None, False),  # not (yet) its voucher
        (OTHER_PROVIDER, ORG, PROV, False),  # another provider
        (ADMIN, ORG, PROV, True),
        (ADMIN, ORG, None, True),
        (SYSTEM, None, PROV, False),  # a record without an organiser is no system's
        (PROVIDER, None, None, False),
    ],
)
def test_may_read_a_record(
    sender: Sender, organiser: str | None, provider: str | None, allowed: bool
) -> None:
    assert may_read(sender, organiser, provider) is allowed


@pytest.mark.parametrize(
    ("sender", "message_sender", "allowed"),
    [
        (SYSTEM, "county", True),
        (SYSTEM, "other-county", False),
        (PROVIDER, "care-oy", True),
        (PROVIDER, "county", False),
        (OTHER_PROVIDER, "care-oy", False),
        (ADMIN, "county", True),
        (ADMIN, "care-oy", True),
    ],
)
def test_may_read_a_message(sender: Sender, message_sender: str, allowed: bool) -> None:
    assert may_read_message(sender, message_sender) is allowed


# --- a system acting for several organisers (a shared client information system) -------------

THIRD = "0116297-6"
SHARED = Sender("shared-kanta", "system", ("0201256-6", ORG), None)


@pytest.mark.parametrize("organiser", ["0201256-6", ORG])
def test_a_shared_system_sends_and_reads_for_each_of_its_organisers(organiser: str) -> None:
    for type_ in ("voucher.granted", "order.placed", "provider.approved", "voucher.assigned"):
        check_may_send(SHARED, type_, organiser, PROV)
    assert may_read(SHARED, organiser, PROV) and may_read(SHARED, organiser, None)


def test_a_shared_system_sends_and_reads_nothing_of_another_organiser() -> None:
    with pytest.raises(NotAllowed, match=f"organisers 0201256-6, {ORG}"):
        check_may_send(SHARED, "voucher.granted", THIRD, None)
    assert not may_read(SHARED, THIRD, PROV)
    assert not may_read(SHARED, None, PROV)
    # Its organisers are its scope, never a provider's: it reports no deliveries.
    with pytest.raises(NotAllowed, match=r"may not send delivery\.reported"):
        check_may_send(SHARED, "delivery.reported", ORG, PROV)


def test_organisers_are_a_tuple_never_one_string() -> None:
    with pytest.raises(TypeError):
        Sender("typo", "system", ORG, None)  # type: ignore[arg-type]
    assert Sender("x", "system", [ORG, ORG], None).organisers == (ORG, ORG)  # type: ignore[arg-type]
    assert SHARED.sole_organiser is None and SYSTEM.sole_organiser == ORG and ADMIN.sole_organiser is None

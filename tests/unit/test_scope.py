"""Who may send what: systems for their organiser, providers as themselves, admins never."""

from __future__ import annotations

import pytest

from psop_hub.hub.errors import NotAllowed
from psop_hub.hub.senders import Sender, check_may_send

SYSTEM = Sender("county", "system", "2077474-0", None)
PROVIDER = Sender("care-oy", "provider", None, "1572860-0")
ADMIN = Sender("ops", "admin", None, None)


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

"""No HETU reaches a log line, a traceback included, in any spelling the contract accepts."""

from __future__ import annotations

import io
import logging
from datetime import date

import pytest

from psop_hub.hub.identifiers import check_hetu
from psop_hub.hub.logs import HetuFilter, configure_logging, mask

# Valid HETUs with every century sign, and the spellings check_hetu accepts for them.
HETUS = ["131052-308T", "010190Y123M", "010190X123M", "150621A123W", "150621B123W", "010101+123N"]


def spellings(hetu: str) -> list[str]:
    """Every spelling of `hetu` the contract accepts: as given, lower case, partly lower, padded."""
    lower_check = hetu[:-1] + hetu[-1].lower()
    lower_sign = hetu[:6] + hetu[6].lower() + hetu[7:]
    return [hetu, hetu.lower(), lower_check, lower_sign, f" {hetu} "]


@pytest.mark.parametrize("hetu", HETUS)
def test_every_accepted_spelling_is_a_valid_hetu_and_is_masked(hetu: str) -> None:
    for spelling in spellings(hetu):
        assert check_hetu(spelling, date(2026, 11, 2)) == hetu.upper()  # the contract accepts it
        for text in (
            f"client {spelling}",
            f"inbox/x/paatos_{spelling.strip()}.xml",  # `_` before: no word boundary
            f"V{spelling.strip()}x",  # letters on both sides
            f"no voucher {spelling.strip()}-1 of organiser 2077474-0",
        ):
            masked = mask(text)
            assert spelling.strip() not in masked and spelling.strip().upper() not in masked.upper()
            assert f"{hetu[:6]}-****" in masked


def test_mask_leaves_other_identifiers() -> None:
    assert mask("voucher V-2026-0001 and 2077474-0") == "voucher V-2026-0001 and 2077474-0"
    uuid_text = "hub_id 8c7d2a1e-1234-4d5e-9f00-123456789abc at 2026-11-02T08:15:00+02:00"
    assert mask(uuid_text) == uuid_text


def test_configured_handler_masks_every_spelling_in_messages_args_and_tracebacks() -> None:
    configure_logging("INFO")
    root = logging.getLogger()
    ours = [h for h in root.handlers if any(isinstance(f, HetuFilter) for f in h.filters)]
    assert len(ours) == 1
    handler = ours[0]
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    previous = handler.setStream(stream)
    logger = logging.getLogger("test.hetu")
    try:
        for hetu in HETUS:
            for spelling in spellings(hetu):
                logger.info("claimed inbox/x/paatos_%s.xml", spelling.strip())
                logger.warning("file paatos_%s.xml: %s", spelling.strip(), "rejected")
                try:
                    raise ValueError(f"Failing row contains ({spelling}, 091)")
                except ValueError:
                    logger.exception("applying %s failed", spelling)
    finally:
        handler.setStream(previous)  # type: ignore[arg-type]
    text = stream.getvalue()
    assert "Failing row contains" in text and "paatos_131052-****.xml" in text
    for hetu in HETUS:
        for spelling in spellings(hetu):
            assert spelling.strip() not in text, spelling


def test_filter_masks_message_args_and_traceback(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.hetu")
    handler = caplog.handler
    handler.addFilter(HetuFilter())
    try:
        raise ValueError("Failing row contains (131052-308t, 091)")
    except ValueError:
        logger.exception("applying %s failed", "131052-308T")
    handler.removeFilter(handler.filters[-1])
    text = caplog.text
    assert "131052-308T" not in text.upper()
    assert "131052-****" in text
    assert "Failing row contains" in text

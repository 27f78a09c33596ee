"""No HETU reaches a log line, a traceback included."""

from __future__ import annotations

import logging

import pytest

from psop_hub.hub.logs import HetuFilter, mask


def test_mask_covers_every_century_sign() -> None:
    assert mask("client 131052-308T and 010190Y123M, 150621B123W") == (
        "client 131052-**** and 010190-****, 150621-****"
    )
    assert mask("voucher V-2026-0001 and 2077474-0") == "voucher V-2026-0001 and 2077474-0"


def test_filter_masks_message_args_and_traceback(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.hetu")
    handler = caplog.handler
    handler.addFilter(HetuFilter())
    try:
        raise ValueError("Failing row contains (131052-308T, 091)")
    except ValueError:
        logger.exception("applying %s failed", "131052-308T")
    handler.removeFilter(handler.filters[-1])
    text = caplog.text
    assert "131052-308T" not in text
    assert "131052-****" in text
    assert "Failing row contains" in text

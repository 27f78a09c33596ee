"""The admin page's languages and times: every text has its Finnish, times are Helsinki time."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from psop_hub.api.adminpage import i18n
from psop_hub.api.adminpage.clock import from_form, shown, to_form
from psop_hub.hub.errors import InvalidInput
from psop_hub.hub.store import STATUSES

PAGE = Path(i18n.__file__).parent
# _("...") and _('...') in templates and page modules, and the title=/message= texts the pages
# hand to error.html (which translates them).
CALLS = re.compile(r"""_\(\s*(["'])((?:(?!\1).)+)\1""")
HANDED = re.compile(r"""\b(?:title|message)\s*=\s*"([^"]+)\"""")


def _texts() -> set[str]:
    found: set[str] = set()
    for path in [*PAGE.glob("templates/*.html"), *PAGE.glob("*.py")]:
        source = path.read_text()
        found.update(m.group(2) for m in CALLS.finditer(source))
        if path.suffix == ".py":
            found.update(m.group(1) for m in HANDED.finditer(source))
    return found


def test_every_text_of_the_page_has_its_finnish() -> None:
    texts = _texts() | set(STATUSES)
    assert len(texts) > 30
    missing = sorted(t for t in texts if t not in i18n.FI)
    assert not missing, missing


def test_the_finnish_keeps_the_placeholders() -> None:
    for english, finnish in i18n.FI.items():
        assert set(re.findall(r"{(\w+)}", english)) == set(re.findall(r"{(\w+)}", finnish)), english


def test_a_translator_fills_in_values() -> None:
    assert i18n.translator("fi")("{total} messages", total=3) == "3 sanomaa"
    assert i18n.translator("en")("{total} messages", total=3) == "3 messages"
    assert i18n.translator("fi")("text nobody translated") == "text nobody translated"


@pytest.mark.parametrize(
    ("query", "cookie", "accept", "chosen"),
    [
        ("fi", "en", "en", "fi"),
        (None, "fi", "en", "fi"),
        ("xx", "fi", None, "fi"),
        (None, None, "sv-FI,fi;q=0.8,en;q=0.5", "fi"),
        (None, None, "de-DE", "en"),
        (None, None, None, "en"),
    ],
)
def test_the_language_is_picked_from_query_cookie_then_browser(
    query: str | None, cookie: str | None, accept: str | None, chosen: str
) -> None:
    assert i18n.pick(query, cookie, accept) == chosen


def test_times_are_shown_in_helsinki_time_winter_and_summer() -> None:
    winter = datetime(2026, 11, 2, 6, 15, 0, tzinfo=UTC)
    assert shown(winter, "en") == "2026-11-02 08:15:00 EET"
    assert shown(winter, "fi") == "2.11.2026 klo 8.15.00"
    summer = "2026-07-01T21:30:05+00:00"
    assert shown(summer, "en") == "2026-07-02 00:30:05 EEST"
    assert shown(summer, "fi") == "2.7.2026 klo 0.30.05"
    assert shown(None, "fi") == ""
    with pytest.raises(ValueError, match="offset"):
        shown(datetime(2026, 1, 1), "en")


def test_the_search_forms_times_are_helsinki_time() -> None:
    assert from_form("since", "2026-11-02T08:15") == datetime(2026, 11, 2, 6, 15, tzinfo=UTC)
    assert from_form("since", "2026-07-01T08:15") == datetime(2026, 7, 1, 5, 15, tzinfo=UTC)
    assert from_form("since", "2026-07-01T08:15:00+00:00") == datetime(2026, 7, 1, 8, 15, tzinfo=UTC)
    assert from_form("since", "  ") is None
    assert to_form(datetime(2026, 11, 2, 6, 15, tzinfo=UTC)) == "2026-11-02T08:15"
    with pytest.raises(InvalidInput) as refused:
        from_form("until", "tomorrow")
    assert refused.value.errors[0].field == "until"


def test_counts_beyond_the_cores_cap_are_shown_as_a_lower_bound() -> None:
    from psop_hub.api.adminpage.messages import shown_count
    from psop_hub.hub.search import COUNT_CAP

    assert shown_count(3) == "3"
    assert shown_count(COUNT_CAP - 1) == str(COUNT_CAP - 1)
    assert shown_count(COUNT_CAP) == f"{COUNT_CAP}+"
    assert shown_count(12, exact=False) == "12+"

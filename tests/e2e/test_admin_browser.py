"""The admin page driven in a real headless Chromium (Debian's `chromium`, Playwright for Python)
against `hub run`: sign in, search, open a failed message, replay it and see it applied; edit and
replay (the browser's own check, then the server's errors, then a valid copy applied); bulk replay
with the confirmation; the language switch; and no page loads anything from outside the hub.

Failed messages are made the real way: deliveries whose voucher does not exist (yet) end `failed`
after the test hub's short retries. Screenshots go to tests/artifacts/ (git-ignored).

Without /usr/bin/chromium the test is skipped, loudly, on a developer's machine; under CI=true it
fails instead (`.ci/run` installs the package), so a green CI run always includes it.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Hub, wait_for_status
from tests.messages import PROVIDER, assigned, delivery, granted, uid

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 60_000


def _need_chromium() -> None:
    if CHROMIUM.exists():
        return
    reason = (
        f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium) to run the "
        "admin page's browser test"
    )
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI: {reason}")
    pytest.skip(f"SKIPPED, NOT TESTED: {reason}")


@pytest.fixture(scope="module")
def browser_page(hub: Hub) -> Iterator[tuple[Any, list[str]]]:
    """A Chromium page, and every URL it requests (recorded from the first request on)."""
    _need_chromium()
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    requested: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.on("request", lambda request: requested.append(request.url))
        try:
            yield page, requested
        finally:
            context.close()
            browser.close()


def _failed_deliveries(hub: Hub, sender: str, numbers: list[str]) -> list[dict[str, Any]]:
    """One delivery per voucher number, none of which exists: each ends failed after its retries."""
    sent = []
    with hub.client(sender) as provider:
        for number in numbers:
            raw = delivery(number, "2")
            answer = provider.post("/api/v1/messages", json=raw)
            assert answer.status_code == 202, answer.text
            sent.append({"raw": raw, "hub_id": answer.json()["hub_id"]})
        for one in sent:
            wait_for_status(provider, one["hub_id"], {"failed"}, timeout=90)
    return sent


def _grant(hub: Hub, number: str) -> None:
    with hub.client("county") as county:
        for raw in (granted(number), assigned(number)):
            answer = county.post("/api/v1/messages", json=raw)
            assert answer.status_code == 202, answer.text
            wait_for_status(county, answer.json()["hub_id"], {"applied"})


def _shot(page: Any, name: str) -> Path:
    path = ARTIFACTS / f"admin-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def _search(page: Any, hub: Hub, q: str, status: str = "") -> None:
    page.goto(f"{hub.url}/admin/messages")
    page.fill("#f-q", q)
    page.select_option("#f-status", status)
    page.click("form.search button[type=submit]")
    page.wait_for_selector("#result-count")


def _until_status(page: Any, wanted: str, timeout_s: float = 60) -> None:
    """Reload the message page until its status badge shows `wanted`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if page.get_attribute("#message-status", "data-status") == wanted:
            return
        time.sleep(0.5)
        page.reload()
    raise AssertionError(f"still {page.get_attribute('#message-status', 'data-status')}, not {wanted}")


def test_the_admin_page_in_a_real_browser(hub: Hub, browser_page: tuple[Any, list[str]]) -> None:
    page, requested = browser_page
    # A provider system of this test's own, so that a filter by sender finds only its messages.
    sender = uid("browser-provider")
    hub.add_client(sender, "--role", "provider", "--provider", PROVIDER)
    single, edited, *bulk = (uid("VB") for _ in range(5))
    failed = _failed_deliveries(hub, sender, [single, edited, *bulk])
    by_number = {f["raw"]["payload"]["voucher_number"]: f for f in failed}
    # The vouchers arrive late: now a replay can be applied.
    for number in (single, *bulk):
        _grant(hub, number)
    existing = uid("VB")
    _grant(hub, existing)

    # --- sign in: a wrong secret first, then the admin's --------------------------------------
    page.goto(f"{hub.url}/admin/")
    assert page.url.startswith(f"{hub.url}/admin/sign-in")
    page.fill("#name", "admin")
    page.fill("#secret", "not-the-secret")
    page.click("button[type=submit]")
    page.wait_for_selector("#sign-in-error")
    _shot(page, "sign-in-refused")
    page.fill("#name", "admin")
    page.fill("#secret", hub.secrets["admin"])
    page.click("button[type=submit]")
    page.wait_for_selector("form.search")
    assert page.url.startswith(f"{hub.url}/admin/messages")
    cookie = next(c for c in page.context.cookies() if c["name"] == "psop_admin_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["expires"] > 0

    # --- search, open the failed message, replay it, see it applied ---------------------------
    _search(page, hub, single, "failed")
    assert page.inner_text("#result-count").startswith("1 ")
    _shot(page, "search")
    page.click(f"tr[data-hub-id='{by_number[single]['hub_id']}'] a")
    page.wait_for_selector("#journey")
    assert page.get_attribute("#message-status", "data-status") == "failed"
    assert "has not arrived yet" in page.inner_text("#message-errors")
    assert "retrying" in page.inner_text("#journey")
    _shot(page, "message-failed")
    page.click("#replay")
    page.wait_for_selector("#notice")
    _until_status(page, "applied")
    assert "replayed" in page.inner_text("#journey")
    _shot(page, "message")

    # --- edit and replay: the browser's check, the server's errors, then a valid copy ---------
    original = by_number[edited]
    page.goto(f"{hub.url}/admin/messages/{original['hub_id']}")
    page.click("#edit-replay")
    page.wait_for_selector("textarea#payload")
    payload = json.loads(page.input_value("textarea#payload"))
    assert payload["voucher_number"] == edited
    page.fill("textarea#payload", '{"voucher_number": ')
    page.click("#send-edit")
    page.wait_for_selector("#payload-check:not([hidden])")
    assert "not valid JSON" in page.inner_text("#payload-check")
    assert "/edit" in page.url  # nothing was sent
    page.fill("textarea#payload", json.dumps(payload | {"quantity": "-1", "service_date": "15.11.2026"}))
    page.click("#send-edit")
    page.wait_for_selector("#edit-errors")
    errors = page.inner_text("#edit-errors")
    assert "payload.quantity" in errors and "payload.service_date" in errors
    _shot(page, "edit-refused")
    page.fill("textarea#payload", json.dumps(payload | {"voucher_number": existing}, indent=2))
    page.fill("#reason", "toteuma kirjattu väärälle setelille")
    page.click("#send-edit")
    page.wait_for_selector("#message-status")
    copy_id = re.search(r"/admin/messages/([0-9a-f-]{36})", page.url)
    assert copy_id and copy_id.group(1) != original["hub_id"]
    _until_status(page, "applied")
    page.goto(f"{hub.url}/admin/messages/{original['hub_id']}")
    assert page.get_attribute("#message-status", "data-status") == "replaced"
    assert page.get_attribute("a.replaced-by", "href") == f"/admin/messages/{copy_id.group(1)}"

    # --- bulk replay of the current filter, with the confirmation -----------------------------
    bulk_ids = {by_number[n]["hub_id"] for n in bulk}
    page.goto(f"{hub.url}/admin/messages")
    page.select_option("#f-status", "failed")
    page.fill("#f-sender", sender)
    page.click("form.search button[type=submit]")
    page.wait_for_selector("#result-count")
    listed = {row.get_attribute("data-hub-id") for row in page.query_selector_all("tr[data-hub-id]")}
    assert listed == bulk_ids
    expected = int(page.inner_text("[data-status=failed] .count"))
    assert expected == len(bulk)
    page.click("#bulk-replay")
    page.wait_for_selector("#count-now")
    page.fill("#reason", "setelit saapuivat myöhässä")
    page.click("#count-and-freeze")
    page.wait_for_selector("#frozen-count")
    assert int(page.get_attribute("#frozen-count", "data-count")) == expected
    _shot(page, "bulk-confirm")
    page.click("#confirm-replay")
    page.wait_for_selector("#job-status")
    # The job page refreshes itself (meta refresh) until the job and its messages are done.
    page.wait_for_selector("#job-status[data-status=done]", timeout=WAIT_MS)
    assert page.inner_text("#job-queued") == str(expected)
    page.wait_for_function(
        "() => !document.querySelector('meta[http-equiv=refresh]')", timeout=WAIT_MS, polling=1000
    )
    now = {
        el.get_attribute("data-status"): int(el.inner_text().split(":")[-1])
        for el in page.query_selector_all("#queued-now [data-status]")
    }
    assert now == {"applied": len(bulk)}, now
    _shot(page, "bulk-job")
    with hub.client(sender) as provider:
        for hub_id in bulk_ids:
            assert provider.get(f"/api/v1/messages/{hub_id}").json()["status"] == "applied"

    # --- Finnish --------------------------------------------------------------------------------
    page.goto(f"{hub.url}/admin/messages")
    page.click("a[hreflang=fi]")
    page.wait_for_selector("html[lang=fi]")
    assert "Hae sanomia" in page.inner_text("h1")
    _shot(page, "search-fi")
    page.click("a[hreflang=en]")
    page.wait_for_selector("html[lang=en]")

    # --- sign out: the cookie opens nothing any more ------------------------------------------
    page.click("header form button[type=submit]")
    page.wait_for_selector("#name")
    page.goto(f"{hub.url}/admin/messages")
    assert page.url.startswith(f"{hub.url}/admin/sign-in")

    # --- nothing from outside the hub ---------------------------------------------------------
    assert requested
    outside = [url for url in requested if not url.startswith(hub.url + "/")]
    assert outside == [], outside
    assert any(url.endswith("/admin/static/admin.css") for url in requested)
    assert any(url.endswith("/admin/static/admin.js") for url in requested)
    assert (ARTIFACTS / "admin-message.png").stat().st_size > 10_000


def test_a_missing_chromium_skips_loudly_but_fails_under_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"CI: .*no-chromium is missing"):
        _need_chromium()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match=r"SKIPPED, NOT TESTED: .*apt-get install -y chromium"):
        _need_chromium()

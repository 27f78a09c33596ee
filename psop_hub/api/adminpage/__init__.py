"""The admin web page at `/admin/`: server-rendered (Jinja2), usable without JavaScript.

Every page reads and acts through the same core functions as the admin REST API (`hub.search`,
`hub.replay`, `adapters.replays`, `hub.replayjobs`, `hub.audit`, `hub.settlement_views`), so
what a page shows and does is what the API shows and does, audited alike; no SQL here.

Layout: `pages.py` (sign-in, sign-out), `messages.py` (search, one message, audit log),
`replays.py` (replay, edit and replay, invoices waiting), `jobs.py` (bulk replays); `auth.py`
(session cookie, CSRF), `security.py` (CSP and other headers), `routing.py` (errors as pages),
`i18n.py` (English and Finnish), `clock.py` (Helsinki time), `render.py` (Jinja2),
`templates/`, `static/` (the page's own CSS and script).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from psop_hub.api.adminpage import jobs, messages, pages, replays
from psop_hub.api.adminpage.security import AdminHeaders

STATIC = Path(__file__).with_name("static")


def install(app: FastAPI) -> None:
    """Add the admin page to the application: its routes, static files and security headers."""
    app.include_router(pages.router)
    app.include_router(messages.router)
    app.include_router(replays.router)
    app.include_router(jobs.router)
    app.mount("/admin/static", StaticFiles(directory=STATIC), name="admin-static")
    app.add_middleware(AdminHeaders)

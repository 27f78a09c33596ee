"""Server-side rendering of the admin pages with Jinja2 (autoescaped; no inline scripts, since
the Content-Security-Policy forbids them)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from psop_hub.api.adminpage import i18n
from psop_hub.api.adminpage.clock import shown
from psop_hub.hub.admin_sessions import AdminSession

TEMPLATES = Path(__file__).with_name("templates")
# The search form's fields as the pages name them.
FILTER_LABELS = {
    "status": "Status",
    "type": "Type",
    "sender": "Sender",
    "organiser": "Organiser",
    "provider": "Provider",
    "since": "Received from",
    "until": "Received until",
    "q": "Search text",
}


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The one Jinja2 environment of the process (templates are compiled once)."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pretty_json"] = lambda value: json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
    return env


def language_of(request: Request) -> str:
    """The page language for this request (`?lang=`, cookie, Accept-Language)."""
    return i18n.pick(
        request.query_params.get("lang"),
        request.cookies.get(i18n.COOKIE),
        request.headers.get("accept-language"),
    )


def with_query(request: Request, **changes: str | int | None) -> str:
    """This page's path and query with some parameters replaced (None: removed)."""
    params = {k: v for k, v in request.query_params.items()}
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = str(value)
    query = urlencode(params)
    return request.url.path + (f"?{query}" if query else "")


def page(
    request: Request,
    template: str,
    session: AdminSession | None,
    *,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """Render `template` for this request: language, translator, Helsinki times, the session's
    CSRF token; a `?lang=` choice is remembered in a cookie."""
    lang = language_of(request)
    _ = i18n.translator(lang)
    html = (
        environment()
        .get_template(template)
        .render(
            request=request,
            lang=lang,
            languages=i18n.LANGUAGES,
            _=_,
            when=lambda value: shown(value, lang),
            with_query=lambda **changes: with_query(request, **changes),
            session=session,
            csrf_token=session.csrf_token if session else "",
            filter_labels=FILTER_LABELS,
            **context,
        )
    )
    response = HTMLResponse(html, status_code=status_code)
    chosen = request.query_params.get("lang")
    if chosen in i18n.LANGUAGES and chosen != request.cookies.get(i18n.COOKIE):
        response.set_cookie(
            i18n.COOKIE, chosen, max_age=365 * 24 * 3600, path="/admin", httponly=True, samesite="strict"
        )
    return response

"""Bulk replay from the admin page, in three steps that replay exactly the set the admin saw:

1. `GET /admin/replay?<the search's filter>`: the filter, how many failed or rejected messages
   match it now, and the reason field (required).
2. `POST /admin/replay`: the dry run (`hub.replayjobs.plan_replay`) freezes that set, each
   message with its status; the confirmation page shows the frozen count, per status, a sample,
   and the reason again.
3. `POST /admin/replay/start`: confirms that frozen set by its id (`start_replay(plan_id=...)`);
   the job runs on the server (any API replica's runner) and `/admin/jobs/{id}` shows its
   progress, refreshing itself with `<meta http-equiv=refresh>` until it and its messages are done.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from psop_hub.api.adminpage import auth
from psop_hub.api.adminpage.messages import (
    PAGE_SIZE,
    REPLAYABLE,
    message_filter,
    page_number,
    search_form,
    shown_count,
)
from psop_hub.api.adminpage.render import page
from psop_hub.api.adminpage.routing import PageRoute
from psop_hub.api.deps import ServicesDep
from psop_hub.hub import audit, replayjobs, search
from psop_hub.hub.admin_sessions import AdminSession
from psop_hub.hub.errors import ConflictError, FieldError, NotFound

router = APIRouter(prefix="/admin", route_class=PageRoute, include_in_schema=False)
SessionDep = Annotated[AdminSession, Depends(auth.current_session)]
MAX_REASON = 1000
# A job's page refreshes itself this often (seconds) while there is progress to see.
REFRESH_S = 2
STILL_WORKING = ("accepted", "retrying")


def _reason_errors(reason: str) -> list[FieldError]:
    if not reason:
        return [FieldError("reason", "Give a reason.")]
    if len(reason) > MAX_REASON:
        return [FieldError("reason", f"at most {MAX_REASON} characters")]
    return []


async def _first_step(
    request: Request,
    services: ServicesDep,
    session: AdminSession,
    form: dict[str, str],
    reason: str = "",
    errors: list[FieldError] | None = None,
    status_code: int = 200,
) -> Response:
    flt = message_filter(form)
    counts = await run_in_threadpool(search.status_counts, services.engine, flt)
    now = sum(counts[s] for s in REPLAYABLE if not flt.statuses or s in flt.statuses)
    return page(
        request,
        "replay_start.html",
        session,
        status_code=status_code,
        filters=form,
        shown_filter={k: v for k, v in form.items() if v},
        count_now=shown_count(now, all(counts[s] < search.COUNT_CAP for s in REPLAYABLE)),
        anything=now > 0,
        reason=reason,
        form_errors=errors or [],
        back=f"/admin/messages?{urlencode({k: v for k, v in form.items() if v})}",
    )


@router.get("/replay")
async def replay_start(request: Request, services: ServicesDep, session: SessionDep) -> Response:
    """Step 1: the current filter, how many it matches now, and the reason field."""
    return await _first_step(request, services, session, search_form(request.query_params))


@router.post("/replay")
async def replay_plan(request: Request, services: ServicesDep, session: SessionDep) -> Response:
    """Step 2: the dry run freezes the set; the confirmation shows its count and the reason."""
    posted = await auth.checked_form(request, session)
    form = search_form(posted)
    reason = posted.get("reason", "").strip()
    errors = _reason_errors(reason)
    if errors:
        return await _first_step(request, services, session, form, reason, errors, status_code=422)
    flt = message_filter(form)
    plan = await run_in_threadpool(
        replayjobs.plan_replay, services.engine, session.admin.name, flt, reason, 10
    )
    return _confirmation(request, session, plan.to_json(), form, reason, [])


def _confirmation(
    request: Request,
    session: AdminSession,
    plan: dict[str, Any],
    form: dict[str, str],
    reason: str,
    errors: list[FieldError],
    status_code: int = 200,
) -> Response:
    return page(
        request,
        "replay_confirm.html",
        session,
        status_code=status_code,
        plan=plan,
        shown_filter={k: v for k, v in form.items() if v},
        reason=reason,
        form_errors=errors,
        back=f"/admin/messages?{urlencode({k: v for k, v in form.items() if v})}",
    )


def _job_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound("No such job.") from None


@router.post("/replay/start")
async def replay_confirmed(request: Request, services: ServicesDep, session: SessionDep) -> Response:
    """Step 3: start the job on exactly the frozen set, then show its progress."""
    posted = await auth.checked_form(request, session)
    plan_id = _job_id(posted.get("plan_id", ""))
    reason = posted.get("reason", "").strip()
    errors = _reason_errors(reason)
    if not errors:
        try:
            job = await run_in_threadpool(
                lambda: replayjobs.start_replay(services.engine, session.admin.name, reason, plan_id=plan_id)
            )
        except ConflictError:
            # Confirmed twice (a second click, a reload): the job exists, show it.
            return RedirectResponse(f"/admin/jobs/{plan_id}", status_code=303)
        return RedirectResponse(f"/admin/jobs/{job.job_id}", status_code=303)
    frozen = await run_in_threadpool(replayjobs.job_status, services.engine, plan_id)
    plan = {"plan_id": str(plan_id), "matched": frozen.matched, "statuses": {}, "sample": []}
    form = search_form({k: ",".join(v) if isinstance(v, list) else str(v) for k, v in frozen.filter.items()})
    return _confirmation(request, session, plan, form, reason, errors, status_code=422)


@router.get("/jobs/{job_id}")
async def job_page(request: Request, services: ServicesDep, session: SessionDep, job_id: str) -> Response:
    """A bulk replay's progress and final report; refreshes itself until all is settled."""
    try:
        job = await run_in_threadpool(replayjobs.job_status, services.engine, _job_id(job_id))
    except NotFound:
        return page(
            request, "error.html", session, status_code=404, title="Not found", message="No such job."
        )
    shown = job.to_json()
    working = job.status in ("planned", "queued", "running") or any(
        shown["queued_now"].get(s, 0) for s in STILL_WORKING
    )
    return page(
        request,
        "job.html",
        session,
        job=shown,
        refresh_s=REFRESH_S if working and job.status != "planned" else None,
    )


@router.get("/jobs")
async def jobs_page(request: Request, services: ServicesDep, session: SessionDep) -> Response:
    """The bulk replays started, newest first (from the audit log, whose reading is audited)."""
    number = page_number(request.query_params.get("page"))
    entries = await run_in_threadpool(
        lambda: audit.audit_entries(
            services.engine,
            session.admin.name,
            action=audit.BULK_START,
            limit=PAGE_SIZE,
            offset=(number - 1) * PAGE_SIZE,
        )
    )
    pages = max(1, -(-entries.total // PAGE_SIZE))
    return page(
        request,
        "jobs.html",
        session,
        entries=[e.to_json() for e in entries.entries],
        page_number=number,
        pages=pages,
    )

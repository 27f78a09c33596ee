"""REST for admins (INTERFACES §3): search messages, inspect one, replay, bulk replay, audit log.

Every route is a thin shell over the core functions in `hub.search`, `hub.replay`,
`hub.replayjobs` and `hub.audit`, which the CLI and the admin page call too; they write the
audit rows. A caller that is not an admin is answered 403.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from psop_hub.adapters.replays import replay_edited
from psop_hub.api.deps import SenderDep, ServicesDep, read_json
from psop_hub.hub import audit, replay, replayjobs, search
from psop_hub.hub.errors import InvalidInput, NotAllowed, NotFound
from psop_hub.hub.senders import Sender

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])


def admin_only(sender: SenderDep) -> Sender:
    """The authenticated sender, if it is an admin; 403 otherwise."""
    if not sender.is_admin:
        raise NotAllowed("only admins may use the admin API")
    return sender


AdminDep = Annotated[Sender, Depends(admin_only)]


def hub_id_of(value: str) -> uuid.UUID:
    """A path's hub_id; anything that is not a UUID names no message."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(f"no message {value}") from None


def filter_of(
    status: Annotated[list[str] | None, Query(description="a status, repeated or comma-separated")] = None,
    type: str | None = None,
    sender: str | None = None,
    organiser: str | None = None,
    provider: str | None = None,
    since: Annotated[str | None, Query(description="received at or after, ISO 8601 with offset")] = None,
    until: Annotated[str | None, Query(description="received before, ISO 8601 with offset")] = None,
    q: Annotated[
        str | None, Query(description="hub_id, message, correlation, voucher, order or event id")
    ] = None,
) -> search.MessageFilter:
    """The search filter from the query string (422 naming each field at fault)."""
    return search.MessageFilter.from_json(
        {
            "status": ",".join(status) if status else None,
            "type": type,
            "sender": sender,
            "organiser": organiser,
            "provider": provider,
            "since": since,
            "until": until,
            "q": q,
        }
    )


FilterDep = Annotated[search.MessageFilter, Depends(filter_of)]


@router.get("/messages")
def search_messages(
    admin: AdminDep,
    services: ServicesDep,
    flt: FilterDep,
    limit: Annotated[int, Query(ge=1, le=search.MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
    counts: bool = True,
) -> dict[str, Any]:
    """Messages matching the filter, newest first, with the total and counts per status (each
    exact up to `count_cap`; `total_exact` false beyond)."""
    page = search.search_messages(services.engine, flt, limit, offset, counts=counts).to_json()
    page["filter"] = flt.to_json()
    return page


@router.get("/messages/{hub_id}")
def show_message(
    admin: AdminDep, services: ServicesDep, hub_id: str, reveal: bool = False, reason: str = ""
) -> dict[str, Any]:
    """One message with payload (HETUs masked unless `reveal=true`), errors and journey; audited."""
    detail = search.show_message(services.engine, admin.name, hub_id_of(hub_id), reveal=reveal, reason=reason)
    return detail.to_json()


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object body; an empty body is `{}`."""
    data = await read_json(request, empty_allowed=True)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidInput("body", "the body must be a JSON object")
    return data


def reason_of(data: dict[str, Any], required: bool = False) -> str:
    """The `reason` of an admin action (1-1000 characters when required)."""
    reason = data.get("reason", "")
    if reason is None:
        reason = ""
    if not isinstance(reason, str) or len(reason) > 1000:
        raise InvalidInput("reason", "reason must be text of at most 1000 characters")
    if required and not reason.strip():
        raise InvalidInput("reason", "a reason is required: say why these messages are replayed")
    return reason.strip()


REPLAY_BODY = {
    "requestBody": {
        "required": False,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "payload": {"type": "object", "description": "an edited payload: replay a copy"},
                        "reason": {"type": "string", "maxLength": 1000},
                    },
                }
            }
        },
    }
}


@router.post(
    "/messages/{hub_id}/replay",
    status_code=202,
    openapi_extra=REPLAY_BODY,
    responses={200: {"description": "nothing to replay (applied since, or not failed)"}},
)
async def replay_message(
    request: Request, admin: AdminDep, services: ServicesDep, hub_id: str
) -> JSONResponse:
    """Replay one failed or rejected message, or with `payload` an edited copy of it (202); a
    message that is not failed or rejected any more is left alone (200, `outcome: skipped`)."""
    data = await json_body(request)
    unknown = sorted(set(data) - {"payload", "reason"})
    if unknown:
        raise InvalidInput(unknown[0], f"unknown field {unknown[0]}")
    reason = reason_of(data)
    key = hub_id_of(hub_id)
    if "payload" in data:
        result = await run_in_threadpool(
            replay_edited, services.engine, admin.name, key, data["payload"], reason, services.publisher
        )
    else:
        result = await run_in_threadpool(
            replay.replay_message, services.engine, admin.name, key, reason, services.publisher
        )
    return JSONResponse(result.to_json(), status_code=202 if result.outcome == "queued" else 200)


# A bulk replay of up to this many messages is worked through within the request, so that the
# answer is its final report; a larger one is left to the runners (any replica's relay thread).
INLINE_REPLAY = 1000

BULK_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["reason"],
                    "properties": {
                        "filter": {"type": "object", "description": "as the search's query parameters"},
                        "dry_run": {"type": "boolean", "default": False},
                        "reason": {"type": "string", "minLength": 1, "maxLength": 1000},
                        "plan_id": {
                            "type": "string",
                            "description": "a dry run's id: replay exactly its set",
                        },
                    },
                }
            }
        },
    }
}


def _plan_id(value: Any) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise InvalidInput("plan_id", "plan_id must be the plan_id a dry run answered") from None


@router.post("/replay", openapi_extra=BULK_BODY, responses={202: {"description": "job started"}})
async def bulk_replay(request: Request, admin: AdminDep, services: ServicesDep) -> JSONResponse:
    """Bulk replay of the failed and rejected messages a filter matches. `dry_run`: the count, a
    sample and a `plan_id` (the set frozen); otherwise a job, of the plan's set if `plan_id` is
    given (a small one answered with its final report, 200; a large one 202 with its progress)."""
    data = await json_body(request)
    unknown = sorted(set(data) - {"filter", "dry_run", "reason", "plan_id"})
    if unknown:
        raise InvalidInput(unknown[0], f"unknown field {unknown[0]}")
    reason = reason_of(data, required=True)
    dry_run = data.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise InvalidInput("dry_run", "dry_run must be true or false")
    raw_filter = data.get("filter", {})
    if not isinstance(raw_filter, dict):
        raise InvalidInput("filter", "filter must be an object with the search's fields")
    plan_id = _plan_id(data["plan_id"]) if data.get("plan_id") is not None else None
    if plan_id is not None and (dry_run or raw_filter):
        raise InvalidInput("plan_id", "a plan_id replays its dry run's set: give no filter and no dry_run")
    flt = None if plan_id is not None else search.MessageFilter.from_json(raw_filter)
    engine = services.engine
    if dry_run:
        assert flt is not None
        plan = await run_in_threadpool(replayjobs.plan_replay, engine, admin.name, flt, reason)
        return JSONResponse(plan.to_json(), status_code=200)
    runner = replayjobs.runner_name()
    job = await run_in_threadpool(replayjobs.start_replay, engine, admin.name, reason, flt, plan_id, runner)
    if job.matched <= INLINE_REPLAY:
        job = await run_in_threadpool(replayjobs.run_job, engine, job.job_id, runner, services.publisher)
    else:
        await run_in_threadpool(replayjobs.release, engine, job.job_id, runner)
    location = f"/api/v1/admin/replay/{job.job_id}"
    status = 200 if job.status == "done" else 202
    return JSONResponse(job.to_json(), status_code=status, headers={"Location": location})


@router.get("/replay/{job_id}")
def replay_job(admin: AdminDep, services: ServicesDep, job_id: str) -> dict[str, Any]:
    """A bulk replay's progress and final report, and what its queued messages are now."""
    try:
        key = uuid.UUID(job_id)
    except ValueError:
        raise NotFound(f"no replay job {job_id}") from None
    return replayjobs.job_status(services.engine, key).to_json()


@router.get("/audit", responses={200: {"content": {"text/csv": {}}}})
def audit_log(
    request: Request,
    admin: AdminDep,
    services: ServicesDep,
    since: Annotated[str | None, Query(description="at or after, ISO 8601 with offset")] = None,
    until: Annotated[str | None, Query(description="before, ISO 8601 with offset")] = None,
    actor: str | None = None,
    action: str | None = None,
    hub_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=audit.MAX_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
    format: Annotated[str | None, Query(pattern="^(json|csv)$")] = None,
) -> Any:
    """The audit log newest first; `format=csv` (or `Accept: text/csv`) exports every matching
    row as CSV. Reading and exporting are audited too."""
    flt = search.MessageFilter.from_json({"since": since, "until": until})
    message = None
    if hub_id:
        try:
            message = uuid.UUID(hub_id)
        except ValueError:
            raise InvalidInput("hub_id", "hub_id must be a UUID") from None
    wants_csv = format == "csv" or (format is None and "text/csv" in request.headers.get("accept", ""))
    if wants_csv:
        text = audit.export_csv(
            services.engine,
            admin.name,
            since=flt.since,
            until=flt.until,
            actor=actor,
            action=action,
            hub_id=message,
        )
        return Response(
            text,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="psop-hub-audit.csv"'},
        )
    return audit.audit_entries(
        services.engine,
        admin.name,
        since=flt.since,
        until=flt.until,
        actor=actor,
        action=action,
        hub_id=message,
        limit=limit,
        offset=offset,
    ).to_json()

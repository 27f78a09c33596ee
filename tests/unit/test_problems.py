"""The HTTP error edge: every answer is problem+json, a crash included, and no HETU comes back."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from psop_hub.api import problems
from psop_hub.hub.errors import ConflictError, FieldError, NotFound, ValidationFailed


def app_with(route_error: Exception) -> FastAPI:
    app = FastAPI()
    problems.install(app)

    @app.get("/boom")
    def boom() -> None:
        raise route_error

    @app.get("/fine")
    def fine() -> dict[str, str]:
        return {"ok": "yes"}

    return app


def test_an_unexpected_error_is_a_500_problem_and_the_connection_stays_usable() -> None:
    with TestClient(app_with(RuntimeError("row (131052-308T) broke")), raise_server_exceptions=False) as c:
        answer = c.get("/boom")
        assert answer.status_code == 500
        assert answer.headers["content-type"] == "application/problem+json"
        body = answer.json()
        assert body["status"] == 500 and body["title"] == "Internal error"
        assert "131052" not in answer.text  # the exception's text is not echoed at all
        assert c.get("/fine").json() == {"ok": "yes"}


def test_unknown_route_and_method_are_problems() -> None:
    with TestClient(app_with(RuntimeError())) as c:
        for answer in (c.get("/nowhere"), c.post("/fine")):
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.json()["status"] in (404, 405)


def test_hetus_are_masked_in_every_text_of_a_problem() -> None:
    cases: list[Exception] = [
        NotFound("no voucher 131052-308t of organiser 2077474-0"),
        ConflictError("message_id '010190y123m' was already used with a different payload", "h"),
        ValidationFailed([FieldError("payload.131052-308T", "unknown field 150621A123W")]),
    ]
    for error in cases:
        with TestClient(app_with(error)) as c:
            text = c.get("/boom").text
        for hetu in ("131052-308T", "010190Y123M", "150621A123W"):
            assert hetu not in text.upper(), text
        assert "-****" in text


def test_the_error_list_is_capped_and_counted() -> None:
    errors = [FieldError(f"payload.f{i}", "unknown field") for i in range(5000)]
    with TestClient(app_with(ValidationFailed(errors))) as c:
        body = c.get("/boom").json()
    assert len(body["errors"]) == problems.MAX_ERRORS
    assert body["error_count"] == 5000


def test_a_wrong_method_is_a_405_problem_with_allow() -> None:
    with TestClient(app_with(RuntimeError())) as c:
        answer = c.post("/fine")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET"
    assert answer.headers["content-type"] == problems.PROBLEM

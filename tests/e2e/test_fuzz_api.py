"""schemathesis against a running hub's /openapi.json, with each role's credentials: no answer is
a 5xx, and every answer matches the schema the document gives for it (status, media type, body).

A hub of its own (database, vhost, data directory), since the fuzzer writes what the schema
allows (parties, replays, messages) and the session hub's tests must not see it. The number of
examples is bounded (FUZZ_EXAMPLES per operation) so the run stays within about a minute.

The coverage phase (boundary and invalid values of every parameter and body field, about 1,700
cases, not bounded by --max-examples) runs with the admin's credentials only: an admin reaches
every route and has every body validated (its messages are validated before the scope check
refuses them), in about 25 s; each role's would take 20-35 s more. FUZZ_COVERAGE=county,provider,admin
runs it for each.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import fresh_database, fresh_vhost, hub_environment
from tests.e2e.conftest import Hub, ready_vouchers, start_hub
from tests.messages import ORGANISER, PROVIDER

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10"))
ROLES = ("county", "provider", "admin")
COVERAGE = [who for who in os.environ.get("FUZZ_COVERAGE", "admin").split(",") if who in ROLES]
RUNS = [(who, "examples,fuzzing,stateful") for who in ROLES] + [(who, "coverage") for who in COVERAGE]
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


@pytest.fixture(scope="module")
def fuzz_hub(run_id: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    name = f"psop_fuzz_{run_id}"
    with fresh_database(name) as db, fresh_vhost(name) as amqp:
        env = hub_environment(db, amqp, str(tmp_path_factory.mktemp("fuzzdata")))
        running = start_hub(env, tmp_path_factory.mktemp("fuzz") / "hub.log")
        try:
            running.add_client("county", "--role", "system", "--organiser", ORGANISER)
            running.add_client("provider", "--role", "provider", "--provider", PROVIDER)
            running.add_client("admin", "--role", "admin")
            ready_vouchers(running, 1)  # something for the reads to find
            yield running
        finally:
            code = running.stop()
        assert code == 0, running.log.read_text()[-3000:]


@pytest.mark.parametrize(
    ("who", "phases"), RUNS, ids=[f"{who}-{phases.split(',')[0]}" for who, phases in RUNS]
)
def test_no_5xx_and_every_answer_matches_the_schema(
    fuzz_hub: Hub, who: str, phases: str, tmp_path: Path
) -> None:
    report = tmp_path / "schemathesis.txt"
    done = subprocess.run(
        [
            str(SCHEMATHESIS),
            "run",
            f"{fuzz_hub.url}/openapi.json",
            "--checks",
            CHECKS,
            "--max-examples",
            str(FUZZ_EXAMPLES),
            "--header",
            f"Authorization: Bearer {fuzz_hub.secrets[who]}",
            "--phases",
            phases,
            "--seed",
            "1",
            "--generation-database",
            "none",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    report.write_text(done.stdout + done.stderr)
    assert done.returncode == 0, (done.stdout + done.stderr)[-8000:]
    log = fuzz_hub.log.read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in log, log[-5000:]

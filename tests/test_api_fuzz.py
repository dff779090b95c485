"""Fuzz the whole API, from its own OpenAPI document, against a real `corral up`.

Schemathesis generates requests for every operation in ``GET /api/schema``, valid ones and
invalid ones, and sends them authenticated as the bootstrapped platform admin. Every response
must not be a 5xx, invalid requests must be refused with a 4xx, and documented responses must
match their documented schema.

The run is bounded and deterministic: a fixed number of examples per operation and mode,
Hypothesis derandomized, no example database and no shrinking (a failure is reported as found).

Schemathesis's own pytest integration (``schemathesis.pytest.from_fixture``) cannot be used
here: it needs the schema while collecting, or, loaded lazily from a fixture, it sets
``Item._nodeid``, which pytest 9.2 no longer has. So the test drives Schemathesis's public
strategy API (``APIOperation.as_strategy``) with Hypothesis directly, one operation at a time,
and gathers every operation's failure before asserting.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from corral_core.testing import CorralProcess, TestDeployment, api_key, free_port

MAX_EXAMPLES = 25
"""Per operation and per mode (valid data, invalid data): about 2,000 requests in all."""

ADMINS_GROUP = "platform-admins"
"""The group through which the bootstrapped admin (the fuzzer) holds its roles."""

CHECKS = [
    schemathesis.checks.not_a_server_error,
    # A request the document says is invalid must be refused with a 4xx.
    schemathesis.checks.negative_data_rejection,
    schemathesis.checks.response_headers_conformance,
]
SCHEMA_CHECKS = [*CHECKS, schemathesis.checks.response_schema_conformance]
"""For every response but a 204: the body of a documented status must match its schema.

Left out, because the document itself is off there, not the responses (reported separately):
- ``status_code_conformance``: validation errors are answered 422 and business-rule refusals
  401/403/404/409, while the document lists only 400 beside the success status; and
  ``POST /api/auth/login`` answers 200 where 201 is documented.
- ``content_type_conformance``: errors are ``application/problem+json``, documented as
  ``application/json``; and the 204 of ``POST /api/auth/logout`` is documented as a JSON ``null``.
  For the same reason ``response_schema_conformance`` is not applied to 204 responses.
- ``positive_data_acceptance``: the document does not carry the business rules (name syntax,
  password policy, expiry choices), so schema-valid requests are rightly refused with a 422.
"""


@dataclass
class Server:
    base_url: str
    key: str
    key_id: int
    process: CorralProcess


@pytest.fixture(scope="module")
def corral(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    deployment = TestDeployment(tmp_path_factory.mktemp("fuzz"))
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    proc = CorralProcess(
        ["up", "--port", str(port)], deployment.process_env(), deployment.tmp / "up.log"
    )
    try:
        proc.wait_http(f"{base_url}/api/health", timeout=60)
        key = api_key(base_url)
        keys = httpx.get(
            f"{base_url}/api/auth/apikeys", headers={"Authorization": f"Bearer {key}"}, timeout=30
        )
        keys.raise_for_status()
        (key_id,) = [k["id"] for k in keys.json() if k["name"] == "tests"]
        yield Server(base_url, key, key_id, proc)
    finally:
        proc.stop()
        deployment.close()


def disarms_the_fuzzer(case: schemathesis.Case, corral: Server) -> bool:
    """Would this request take away the fuzzer's own credential or roles?

    After it, every later request would be refused with a 401 or 403, and the rest of the run
    would test nothing. Such requests are not sent; the operations themselves stay fuzzed with
    every other value. ``POST /api/auth/logout`` is fuzzed as it is: it ends browser sessions
    only, and the fuzzer signs in with an API key.
    """
    path, method, params = case.operation.path, case.method.upper(), case.path_parameters or {}
    # Revoking the fuzzer's API key. Credentials are revoked by id whatever their kind, so the
    # tokens route could revoke the key too.
    if path in {"/api/auth/apikeys/{key_id}", "/api/auth/tokens/{token_id}"}:
        return str(params.get("key_id", params.get("token_id"))) == str(corral.key_id)
    # Deleting the admins' group, changing its roles, or taking the admin out of it.
    return (
        path.startswith("/api/groups/{name}")
        and method != "GET"
        and params.get("name") == ADMINS_GROUP
    )


def crashes(log: str) -> str:
    """The server's logged crashes: the request line and the exception, one pair per crash."""
    found = re.findall(r"\[ERROR\] (.+ crashed)\n(?:(?:  .*|Traceback.*)\n)*(.+)", log)
    return "\n".join(f"{request}: {exception}" for request, exception in found)


def test_api_answers_generated_requests_without_a_server_error(corral: Server) -> None:
    schema = schemathesis.openapi.from_url(f"{corral.base_url}/api/schema", timeout=30)
    schema.config.update(
        base_url=corral.base_url, headers={"Authorization": f"Bearer {corral.key}"}
    )
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()  # raises if the document has an invalid operation
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                # Each example is an HTTP round trip: generation speed is not what is tested.
                suppress_health_check=[
                    HealthCheck.too_slow,
                    HealthCheck.filter_too_much,
                    HealthCheck.data_too_large,
                ],
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def call(case: schemathesis.Case) -> None:
                if disarms_the_fuzzer(case, corral):
                    return
                response = case.call(timeout=30)
                case.validate_response(
                    response, checks=CHECKS if response.status_code == 204 else SCHEMA_CHECKS
                )

            try:
                call()
            except Unsatisfiable:
                # No invalid request exists for an operation with no parameters and no body.
                if mode is not GenerationMode.NEGATIVE:
                    raise
            except (Exception, BaseExceptionGroup) as exc:  # FailureGroup is a BaseExceptionGroup
                failures.append(f"--- {operation.label} ({mode.value} data)\n{exc}")
    assert operations >= 30, f"only {operations} operations in the OpenAPI document"
    log = corral.process.output()
    if failures:
        pytest.fail(
            "\n\n".join(failures)
            + f"\n\nserver crashes ({corral.process.log_path}):\n"
            + (crashes(log) or "(none logged)"),
            pytrace=False,
        )
    assert "Traceback" not in log, log


def test_the_fuzzer_kept_its_credential_and_roles(corral: Server) -> None:
    """The run above was authenticated as a platform admin from start to end."""
    whoami = httpx.get(
        f"{corral.base_url}/api/auth/whoami",
        headers={"Authorization": f"Bearer {corral.key}"},
        timeout=30,
    )
    assert whoami.status_code == 200, whoami.text
    assert "platform:admin" in whoami.json()["roles"]

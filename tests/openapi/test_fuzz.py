"""Schemathesis fuzzes every operation of the served document against a running service, as an
admin: no 5xx, and every response conforms to the document (status, content type, schema)."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.live import LiveServer
from tests.world import PASSWORD

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def api_schema(server: LiveServer) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{server.base_url}/api/v3_0/openapi.json")


@pytest.fixture(scope="module")
def admin_token(server: LiveServer) -> str:
    response = httpx.post(
        f"{server.base_url}/api/requestAuthToken",
        json={"email": "test_admin_user@seita.nl", "password": PASSWORD},
    )
    response.raise_for_status()
    return str(response.json()["auth_token"])


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_fuzzing_finds_no_server_error_and_no_undocumented_answer(
    case: schemathesis.Case, admin_token: str
) -> None:
    case.call_and_validate(headers={"Authorization": admin_token}, checks=CHECKS)

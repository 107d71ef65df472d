"""The OpenAPI document is the contract: committed, served, complete."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from httpx import AsyncClient
from openapi_spec_validator import validate

from app.openapi import COMMITTED, document, main, render

OPERATIONS = {
    ("get", "/api/"): "get_api_info",
    ("post", "/api/requestAuthToken"): "request_auth_token",
    ("get", "/api/v3_0/health/ready"): "get_health_ready",
    ("get", "/api/v3_0/accounts"): "list_accounts",
    ("post", "/api/v3_0/accounts"): "create_account",
    ("get", "/api/v3_0/accounts/{id}"): "get_account",
    ("patch", "/api/v3_0/accounts/{id}"): "update_account",
    ("get", "/api/v3_0/accounts/{id}/auditlog"): "get_account_audit_log",
    ("get", "/api/v3_0/users"): "list_users",
    ("get", "/api/v3_0/users/{id}"): "get_user",
    ("post", "/api/v3_0/users"): "create_user",
    ("patch", "/api/v3_0/users/{id}"): "update_user",
    ("patch", "/api/v3_0/users/{id}/password-reset"): "reset_user_password",
    ("get", "/api/v3_0/users/{id}/auditlog"): "get_user_audit_log",
    ("post", "/api/requestPasswordReset"): "request_password_reset",
    ("post", "/api/resetPassword"): "reset_password",
}
PUBLIC = {
    "get_api_info",
    "request_auth_token",
    "get_health_ready",
    "request_password_reset",
    "reset_password",
}


def operations() -> dict[str, dict[str, object]]:
    doc = document()
    return {
        op["operationId"]: op
        for path in doc["paths"].values()
        for op in path.values()
        if isinstance(op, dict) and "operationId" in op
    }


def test_committed_document_is_what_the_app_generates() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == render(document()), (
        "app/openapi.json is stale: run `make openapi` and commit it"
    )


async def test_the_document_is_served(client: AsyncClient) -> None:
    response = await client.get("/api/v3_0/openapi.json")
    assert response.status_code == 200
    assert response.json() == json.loads(COMMITTED.read_text(encoding="utf-8"))


def test_the_document_is_valid_openapi_3_1() -> None:
    doc = document()
    assert doc["openapi"].startswith("3.1")
    validate(doc)


def test_every_operation_has_a_stable_id() -> None:
    doc = document()
    found = {
        (method, path): op["operationId"]
        for path, methods in doc["paths"].items()
        for method, op in methods.items()
    }
    assert found == OPERATIONS


@pytest.mark.parametrize("operation_id", sorted(OPERATIONS.values()))
def test_every_operation_is_described(operation_id: str) -> None:
    op = operations()[operation_id]
    assert op.get("summary")
    assert len(str(op.get("description", ""))) > 40


@pytest.mark.parametrize("operation_id", sorted(set(OPERATIONS.values()) - PUBLIC))
def test_protected_operations_declare_the_security_scheme_and_401(operation_id: str) -> None:
    op = operations()[operation_id]
    assert op["security"] == [{"ApiKeyAuth": []}]
    responses = op["responses"]
    assert isinstance(responses, dict)
    assert "401" in responses


def test_the_security_scheme_is_the_authorization_header() -> None:
    schemes = document()["components"]["securitySchemes"]
    assert schemes == {
        "ApiKeyAuth": {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": schemes["ApiKeyAuth"]["description"],
        }
    }


def test_error_responses_use_the_envelope_with_examples() -> None:
    for operation_id, op in operations().items():
        responses = op["responses"]
        assert isinstance(responses, dict)
        for code, response in responses.items():
            if int(code) < 400 or operation_id == "get_health_ready":
                continue
            content = response["content"]["application/json"]
            assert content["schema"] == {"$ref": "#/components/schemas/ErrorEnvelope"}, (
                operation_id,
                code,
            )
            assert set(content["example"]) == {"message", "status"}
    assert "HTTPValidationError" not in json.dumps(document())


def test_errors_that_each_operation_can_answer_are_documented() -> None:
    expected = {
        "list_accounts": {"401", "422"},
        "get_account": {"401", "403", "404", "422"},
        "create_account": {"400", "401", "403", "422"},
        "update_account": {"400", "401", "403", "404", "412", "422"},
        "get_account_audit_log": {"401", "403", "404", "422"},
        "request_auth_token": {"400", "401", "422"},
        "get_health_ready": {"503"},
    }
    ops = operations()
    for operation_id, codes in expected.items():
        responses = ops[operation_id]["responses"]
        assert isinstance(responses, dict)
        assert codes <= set(responses), operation_id


def test_hyphenated_keys_are_documented_as_such() -> None:
    schemas = document()["components"]["schemas"]
    assert {"data", "num-records", "filtered-records"} <= set(schemas["AccountPage"]["properties"])
    # The hyphenated query aliases are accepted but named only in the descriptions, so that
    # generated clients get one clean argument each.
    params = {p["name"]: p for p in operations()["list_accounts"]["parameters"]}
    assert {"per_page", "sort_by", "sort_dir"} <= set(params)
    assert not {"per-page", "sort-by", "sort-dir"} & set(params)
    for name in ("per_page", "sort_by", "sort_dir"):
        assert f"`{name.replace('_', '-')}`" in params[name]["description"]


def test_the_writer_takes_a_path_and_answers_help(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "openapi.json"
    assert main([str(target)]) == 0
    assert target.read_text(encoding="utf-8") == render(document())
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    assert "python -m app.openapi" in capsys.readouterr().out
    assert sorted(path.name for path in tmp_path.iterdir()) == ["openapi.json"]  # no "--help"

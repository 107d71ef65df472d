"""A TypeScript client generated from the committed document (openapi-typescript types,
openapi-fetch calls) type-checks under `tsc --strict` and drives a running service: log in, a page
of accounts, read, PATCH with If-Match, read back, and two error envelopes (clients/typescript)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.databases import Backend
from tests.live import LiveServer, live_server
from tests.smtp import SmtpServer, smtp_server
from tests.world import PASSWORD

PACKAGE = Path(__file__).resolve().parents[2] / "clients" / "typescript"
# Written after a successful `npm ci`: the hash of what it installed from.
INSTALLED_FROM = PACKAGE / "node_modules" / ".installed-from.sha256"
# No npm update check: the suite runs offline once npm's cache holds the lock's packages.
NPM_ENV = {**os.environ, "npm_config_update_notifier": "false"}
NPM_CI_TIMEOUT = 300  # a cold cache downloads about 40 packages
SCRIPT_TIMEOUT = 120  # tsc on two shared cores takes about 10 s
FLOW_TIMEOUT = 60


def _manifest_hash() -> str:
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        digest.update((PACKAGE / name).read_bytes())
    return digest.hexdigest()


def _npm(npm: str, *args: str, timeout: float) -> None:
    try:
        done = subprocess.run(
            [npm, *args],
            cwd=PACKAGE,
            env=NPM_ENV,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"`npm {' '.join(args)}` took more than {timeout} s")
    if done.returncode != 0:
        pytest.fail(f"`npm {' '.join(args)}` failed:\n{done.stdout}\n{done.stderr}")


@pytest.fixture(scope="module")
def flow_script() -> tuple[str, Path]:
    """Node and build/flow.js, built from a schema generated from app/openapi.json just now."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("Node.js and npm are missing: `apt-get install nodejs npm` (make system-deps)")
    wanted = _manifest_hash()
    if not INSTALLED_FROM.exists() or INSTALLED_FROM.read_text() != wanted:
        _npm(npm, "ci", "--no-audit", "--no-fund", "--prefer-offline", timeout=NPM_CI_TIMEOUT)
        INSTALLED_FROM.write_text(wanted)
    for script in ("generate", "typecheck", "build"):
        _npm(npm, "run", script, timeout=SCRIPT_TIMEOUT)
    return node, PACKAGE / "build" / "flow.js"


async def _run_flows(
    node: str, script: Path, base_url: str, *flows: str, **env: str
) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        node,
        str(script),
        *flows,
        cwd=PACKAGE,
        env={**os.environ, "BASE_URL": base_url, "DEMO_PASSWORD": PASSWORD, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), FLOW_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"`node {script.name}` took more than {FLOW_TIMEOUT} s")
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


# flow_script comes first so that the build runs before the server starts.
async def test_typescript_client_drives_the_account_flow(
    flow_script: tuple[str, Path], server: LiveServer
) -> None:
    node, script = flow_script
    code, out, err = await _run_flows(node, script, server.base_url)
    assert code == 0, f"{out}\n{err}"
    result = json.loads(out)
    assert result["ok"] is True
    accounts = result["flows"]["accounts"]

    token_user = accounts["user_id"]
    assert isinstance(token_user, int)
    assert token_user > 0
    assert accounts["page"] == {
        "names": [
            "Multi Role Account",
            "Test Consultancy Account",
            "Test ConsultancyClient Account",
            "Test Dummy Account",
            "Test Empty Account",
        ],
        "num_records": 7,
        "filtered_records": 7,
    }
    assert accounts["account"]["name"] == "Multi Role Account"
    assert accounts["primary_color"] == {"before": None, "after": "#0a7e3b"}
    assert accounts["etag_changed"] is True
    unknown_id = 987_654
    assert accounts["unknown_account"] == {
        "status": 404,
        "body": {"message": f"Account {unknown_id} not found", "status": "NOT_FOUND"},
    }
    assert accounts["stale_etag"]["status"] == 412
    assert accounts["stale_etag"]["body"]["status"] == "PRECONDITION_FAILED"


@pytest.fixture(scope="module")
async def mail() -> AsyncIterator[SmtpServer]:
    async with smtp_server() as server:
        yield server


@pytest.fixture(scope="module")
async def mailing_server(backend: Backend, mail: SmtpServer) -> AsyncIterator[LiveServer]:
    async with live_server(backend, extra_env={"SMTP_URL": mail.url}) as running:
        yield running


async def test_typescript_client_drives_the_user_flow(
    flow_script: tuple[str, Path], mailing_server: LiveServer, mail: SmtpServer
) -> None:
    """invite -> (the mail) -> set password -> log in -> update -> deactivate -> log-in refused."""
    node, script = flow_script
    email = "typescript-user@example.org"
    base = mailing_server.base_url
    code, out, err = await _run_flows(node, script, base, "invite", USER_EMAIL=email)
    assert code == 0, f"{out}\n{err}"
    user_id = json.loads(out)["flows"]["invite"]["user_id"]
    link = (await mail.wait_for_message()).link
    token = parse_qs(urlsplit(link).query)["token"][0]
    code, out, err = await _run_flows(
        node, script, base, "onboard", USER_EMAIL=email, RESET_TOKEN=token
    )
    assert code == 0, f"{out}\n{err}"
    assert json.loads(out)["flows"]["onboard"] == {
        "user_id": user_id,
        "username": "TypeScript User Renamed",
        "active": False,
        "refused": 401,
    }

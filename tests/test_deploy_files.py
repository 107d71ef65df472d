"""The deployment files: Kubernetes manifests against the published schemas, the wiring of
deploy/compose.yaml, and the command the image runs (Dockerfile, deploy/serve.sh).

Nothing here needs a network, Docker or a cluster: the schemas come with kubernetes-validate.
"""

from __future__ import annotations

import asyncio
import configparser
import copy
import ipaddress
import os
import re
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import kubernetes_validate
import pytest
import yaml
from fastapi import FastAPI
from pydantic import SecretStr
from uvicorn.main import main as uvicorn_command

from app.main import create_app
from app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
SERVE = DEPLOY / "serve.sh"
MANIFESTS = sorted(K8S.glob("*.yaml"))

# The newest Kubernetes whose schemas kubernetes-validate ships (pyproject.toml's range).
K8S_VERSION = "1.37"

READY_PATH = "/api/v3_0/health/ready"
LIVE_PATH = "/metrics"
APPS = ("app1", "app2")


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _manifest(kind: str) -> dict[str, Any]:
    found = [doc for path in MANIFESTS for doc in _documents(path) if doc["kind"] == kind]
    assert len(found) == 1, f"one {kind} in deploy/k8s, found {len(found)}"
    return found[0]


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


# --- the image's command ----------------------------------------------------------------------


def _serve_args(tmp_path: Path, **env: str) -> list[str]:
    """What deploy/serve.sh runs `accounts-serve` (uvicorn's command line, app/serve.py) with:
    a fake `accounts-serve` first on PATH prints them."""
    fake = tmp_path / "accounts-serve"
    fake.write_text("#!/bin/sh\nprintf '%s\\n' \"$@\"\n")
    fake.chmod(0o755)
    environment = {k: v for k, v in os.environ.items() if k != "WEB_CONCURRENCY"}
    environment.update(env, PATH=f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run(
        ["sh", str(SERVE)], env=environment, capture_output=True, text=True, check=True, timeout=30
    )
    return done.stdout.splitlines()


def _option(args: list[str], name: str) -> str:
    assert args.count(name) == 1, f"{name} once in {args}"
    return args[args.index(name) + 1]


def _nproc() -> str:
    return subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout.strip()


def _graceful_timeout(tmp_path: Path) -> int:
    return int(_option(_serve_args(tmp_path), "--timeout-graceful-shutdown"))


@pytest.mark.parametrize(
    ("env", "workers"),
    [({}, None), ({"WEB_CONCURRENCY": ""}, None), ({"WEB_CONCURRENCY": "3"}, "3")],
    ids=["unset", "empty", "three"],
)
def test_serve_runs_web_concurrency_workers_default_nproc(
    tmp_path: Path, env: dict[str, str], workers: str | None
) -> None:
    args = _serve_args(tmp_path, **env)
    assert args[0] == "app.main:app"
    assert _option(args, "--workers") == (workers or _nproc())
    assert _option(args, "--loop") == "uvloop"
    assert _option(args, "--http") == "httptools"
    assert _option(args, "--host") == "0.0.0.0"
    assert _option(args, "--port") == "8000"
    assert "--proxy-headers" in args
    assert int(_option(args, "--timeout-graceful-shutdown")) > 0


def test_serve_arguments_are_accepted_by_the_installed_uvicorn(tmp_path: Path) -> None:
    # Click parses (and checks the choices of) every option without starting a server.
    context = uvicorn_command.make_context("uvicorn", _serve_args(tmp_path, WEB_CONCURRENCY="2"))
    assert context.params["app"] == "app.main:app"
    assert context.params["workers"] == 2
    assert context.params["loop"] == "uvloop"
    assert context.params["http"] == "httptools"
    assert context.params["proxy_headers"] is True
    # uvloop and httptools come with uvicorn[standard], a dependency of the package.
    __import__("uvloop")
    __import__("httptools")


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_dockerfile_serves_with_serve_sh_as_a_numeric_non_root_user() -> None:
    instructions = _dockerfile()
    single = {name: args for name, args in instructions if name != "COPY"}
    assert single["FROM"] == "python:3.11-slim"
    assert yaml.safe_load(single["CMD"]) == ["/bin/sh", "/srv/deploy/serve.sh"]
    assert ("COPY", "deploy/serve.sh ./deploy/serve.sh") in instructions
    assert single["WORKDIR"] == "/srv"
    assert single["STOPSIGNAL"] == "SIGTERM"
    assert single["EXPOSE"] == "8000"
    user = single["USER"].split(":")[0]
    assert user.isdigit(), "a numeric user lets Kubernetes check runAsNonRoot"
    assert int(user) != 0
    deployment = _manifest("Deployment")
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == int(user)


def test_dockerignore_keeps_local_state_and_secrets_out() -> None:
    patterns = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for needed in (".git", ".venv", "**/node_modules", "*.db", "**/*.db", ".env"):
        assert needed in patterns
    assert "deploy/userlist.txt" in patterns
    # What the image copies must not be ignored.
    for copied in ("app", "alembic", "deploy", "deploy/serve.sh", "pyproject.toml"):
        assert copied not in patterns


# --- Kubernetes ---------------------------------------------------------------------------------


def test_the_manifests_are_there() -> None:
    kinds = {doc["kind"] for path in MANIFESTS for doc in _documents(path)}
    assert {"Deployment", "Service", "Job", "HorizontalPodAutoscaler", "Secret"} <= kinds


@pytest.mark.parametrize("path", MANIFESTS, ids=[path.name for path in MANIFESTS])
def test_manifest_validates_strictly_against_the_kubernetes_schemas(path: Path) -> None:
    for doc in _documents(path):
        # A kind or apiVersion without a schema raises SchemaNotFoundError: a failure too.
        assert kubernetes_validate.validate(doc, K8S_VERSION, strict=True) == K8S_VERSION


def _rename(mapping: dict[str, Any], old: str, new: str) -> None:
    mapping[new] = mapping.pop(old)


BROKEN: dict[str, Callable[[dict[str, Any]], None]] = {
    "replica": lambda d: _rename(d["spec"], "replicas", "replica"),
    "readinessprobe": lambda d: _rename(_container(d), "readinessProbe", "readinessprobe"),
    "replicas-not-a-number": lambda d: d["spec"].update(replicas="two"),
    "probe-without-port": lambda d: _container(d)["livenessProbe"]["httpGet"].pop("port"),
}


@pytest.mark.parametrize("breakage", BROKEN.values(), ids=BROKEN.keys())
def test_a_broken_manifest_is_rejected(breakage: Callable[[dict[str, Any]], None]) -> None:
    deployment = copy.deepcopy(_manifest("Deployment"))
    kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)
    breakage(deployment)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_deployment_probes_ready_on_the_database_and_alive_without_it() -> None:
    container = _container(_manifest("Deployment"))
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"http": 8000}
    assert container["readinessProbe"]["httpGet"] == {"path": READY_PATH, "port": "http"}
    # A database outage takes pods out of the Service but must not restart them.
    assert container["livenessProbe"]["httpGet"] == {"path": LIVE_PATH, "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == LIVE_PATH


def _get(app: FastAPI, *paths: str) -> list[httpx.Response]:
    """GET each path in-process, on an event loop of its own (these are plain sync tests)."""

    async def get() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return [await client.get(path) for path in paths]

    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(get())
    finally:
        loop.close()


def test_liveness_path_answers_while_the_database_is_away() -> None:
    # Nothing listens on port 1: readiness says 503, liveness still 200.
    settings = Settings(
        app_env="test",
        secret_key=SecretStr("deploy-files-test-secret"),
        database_url="postgresql+asyncpg://accounts:x@127.0.0.1:1/accounts",
        db_connect_timeout=2,
    )
    live, ready = _get(create_app(settings), LIVE_PATH, READY_PATH)
    assert live.status_code == 200
    assert "http_requests_total" in live.text
    assert ready.status_code == 503
    assert ready.json()["database_status"] is False


def test_deployment_drains_within_its_grace_period(tmp_path: Path) -> None:
    pod = _manifest("Deployment")["spec"]["template"]["spec"]
    command = _container(_manifest("Deployment"))["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = int(command[1])
    assert pre_stop > 0, "endpoints are removed before SIGTERM"
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + _graceful_timeout(tmp_path)


def test_deployment_runs_locked_down() -> None:
    deployment = _manifest("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = _container(deployment)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"limits", "requests"} <= container["resources"].keys()


def test_deployment_settings_and_secrets() -> None:
    env = _env(_container(_manifest("Deployment")))
    assert env["APP_ENV"] == "production"
    for name in ("SECRET_KEY", "DATABASE_URL"):
        assert env[name] == {"secretKeyRef": {"name": "accounts-secrets", "key": name}}
    assert env["DB_PGBOUNCER"] == "true"
    assert env["WEB_CONCURRENCY"] == "2"
    assert urlsplit(env["RATE_LIMIT_STORAGE_URL"]).scheme == "redis"


def test_migration_job_goes_straight_to_postgres() -> None:
    job = _manifest("Job")
    container = _container(job)
    assert container["command"] == ["python", "-m", "app.cli", "db", "upgrade"]
    assert job["spec"]["backoffLimit"] >= 1
    assert job["spec"]["ttlSecondsAfterFinished"] > 0
    assert container["image"] == _container(_manifest("Deployment"))["image"]
    env = _env(container)
    assert "DB_PGBOUNCER" not in env
    key = env["DATABASE_URL"]["secretKeyRef"]
    assert key["name"] == "accounts-secrets"
    # The example Secret has every key the manifests read, and the URLs say where they go.
    secret = _manifest("Secret")
    assert secret["metadata"]["name"] == "accounts-secrets"
    assert urlsplit(secret["stringData"][key["key"]]).port == 5432
    assert urlsplit(secret["stringData"]["DATABASE_URL"]).port == 6432
    assert "SECRET_KEY" in secret["stringData"]
    assert all("CHANGE-ME" in value for value in secret["stringData"].values())


def test_service_and_autoscaler_point_at_the_deployment() -> None:
    deployment = _manifest("Deployment")
    service = _manifest("Service")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}
    ]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpa = _manifest("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10)
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert deployment["spec"]["replicas"] == hpa["spec"]["minReplicas"]


# --- docker compose -----------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$\{(\w+)(?::([-?])([^}]*))?\}")


def _interpolate(value: Any) -> Any:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} with nothing set: the defaults."""
    if isinstance(value, str):
        return _VARIABLE.sub(
            lambda m: m.group(3) if m.group(2) == "-" else f"<{m.group(1)}>", value
        )
    if isinstance(value, dict):
        return {key: _interpolate(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_interpolate(item) for item in value]
    return value


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return _interpolate(compose["services"])


def _mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Bind mounts: target in the container -> file in deploy/."""
    found = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            assert volume["type"] == "bind"
            source, target = volume["source"], volume["target"]
        if source.startswith("."):
            found[target] = (DEPLOY / source).resolve()
    return found


def _pgbouncer_ini() -> configparser.ConfigParser:
    ini = configparser.ConfigParser()
    ini.read_string((DEPLOY / "pgbouncer.ini").read_text())
    return ini


def test_compose_has_no_version_key_and_the_services(compose: dict[str, Any]) -> None:
    assert "version" not in compose
    assert {"postgres", "pgbouncer", "redis", "migrate", "haproxy", *APPS} <= set(
        compose["services"]
    )


def test_compose_mounts_the_shared_haproxy_and_pgbouncer_configuration(
    services: dict[str, Any],
) -> None:
    haproxy = _mounts(services["haproxy"])
    assert haproxy["/usr/local/etc/haproxy/haproxy.cfg"] == DEPLOY / "haproxy.cfg"
    pgbouncer = _mounts(services["pgbouncer"])
    assert pgbouncer["/etc/pgbouncer/pgbouncer.ini"] == DEPLOY / "pgbouncer.ini"
    assert (DEPLOY / "haproxy.cfg").is_file()
    assert (DEPLOY / "pgbouncer.ini").is_file()
    # PgBouncer's auth_file is the userlist the operator creates from the example.
    auth_file = _pgbouncer_ini()["pgbouncer"]["auth_file"]
    assert pgbouncer[auth_file] == DEPLOY / "userlist.txt"
    assert (DEPLOY / "userlist.txt.example").is_file()


def test_only_haproxy_publishes_a_port(services: dict[str, Any]) -> None:
    assert [name for name, service in services.items() if "ports" in service] == ["haproxy"]
    published = services["haproxy"]["ports"]
    assert [port.split(":")[-1] for port in published] == ["8080"]
    assert services["haproxy"]["environment"]["HAPROXY_BIND"] == ":8080"


def test_haproxy_gets_every_variable_its_configuration_reads(services: dict[str, Any]) -> None:
    needed = set(re.findall(r"\$\{(\w+)\}", (DEPLOY / "haproxy.cfg").read_text()))
    environment = services["haproxy"]["environment"]
    assert needed
    assert needed <= environment.keys()
    assert {environment["APP1"], environment["APP2"]} == {f"{app}:8000" for app in APPS}


def test_the_replicas_go_through_pgbouncer(services: dict[str, Any]) -> None:
    ini = _pgbouncer_ini()
    assert services["app1"] == services["app2"]
    for app in APPS:
        env = services[app]["environment"]
        assert env["APP_ENV"] == "production"
        assert env["DB_PGBOUNCER"] == "true"
        url = urlsplit(env["DATABASE_URL"])
        assert url.scheme == "postgresql+asyncpg"
        assert (url.hostname, url.port) == ("pgbouncer", int(ini["pgbouncer"]["listen_port"]))
        assert url.path.lstrip("/") in ini["databases"]
        assert env["RATE_LIMIT_STORAGE_URL"] == "redis://redis:6379/0"
        assert env["API_RATE_LIMIT"] == "500/minute"
        assert services[app]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
        assert {"pgbouncer", "redis"} <= services[app]["depends_on"].keys()
        assert services[app]["stop_grace_period"] == "30s"


def test_secret_key_is_required(compose: dict[str, Any]) -> None:
    for app in APPS:
        assert compose["services"][app]["environment"]["SECRET_KEY"].startswith("${SECRET_KEY:?")


def test_pgbouncer_reaches_the_postgres_service(services: dict[str, Any]) -> None:
    server = dict(item.split("=") for item in _pgbouncer_ini()["databases"]["accounts"].split())
    assert server["host"] in services
    assert server["host"] == "postgres"
    assert server["port"] == "5432"
    assert server["dbname"] == services["postgres"]["environment"]["POSTGRES_DB"]


def test_migrate_goes_straight_to_postgres(services: dict[str, Any]) -> None:
    migrate = services["migrate"]
    assert migrate["command"] == ["python", "-m", "app.cli", "db", "upgrade"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    url = urlsplit(migrate["environment"]["DATABASE_URL"])
    assert (url.hostname, url.port) == ("postgres", 5432)
    assert migrate["environment"].get("DB_PGBOUNCER", "false") == "false"
    # One image, built from the repository's Dockerfile.
    for name in ("migrate", *APPS):
        build = services[name]["build"]
        assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == ROOT / "Dockerfile"
        assert services[name]["image"] == migrate["image"]


def test_one_password_everywhere(services: dict[str, Any]) -> None:
    password = services["postgres"]["environment"]["POSTGRES_PASSWORD"]
    assert "local" in password, "the default is marked as for local use"
    for name in ("migrate", *APPS):
        assert urlsplit(services[name]["environment"]["DATABASE_URL"]).password == password
    example = [
        line
        for line in (DEPLOY / "userlist.txt.example").read_text().splitlines()
        if line and not line.startswith(";")
    ]
    assert [shlex.split(line) for line in example] == [["accounts", password]]


def test_the_replicas_trust_haproxy_alone(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    networks = services["haproxy"]["networks"]
    assert len(networks) == 1
    (network, attachment), *_ = networks.items()
    address = ipaddress.ip_address(attachment["ipv4_address"])
    (pool,) = compose["networks"][network]["ipam"]["config"]
    assert address in ipaddress.ip_network(pool["subnet"])
    assert address not in ipaddress.ip_network(pool["ip_range"]), "never handed out to another"
    for app in APPS:
        assert services[app]["environment"]["FORWARDED_ALLOW_IPS"] == str(address)
        assert services[app]["networks"] == [network]


def test_every_dependency_exists(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for dependency in service.get("depends_on", []):
            assert dependency in services, f"{name} depends on {dependency}"


def test_the_replicas_healthcheck_is_readiness_with_python(services: dict[str, Any]) -> None:
    for app in APPS:
        test = services[app]["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "-c"]
        assert f"http://127.0.0.1:8000{READY_PATH}" in test[3]
        compile(test[3], "healthcheck", "exec")


def test_compose_stops_within_the_graceful_shutdown(
    services: dict[str, Any], tmp_path: Path
) -> None:
    grace = int(services["app1"]["stop_grace_period"].removesuffix("s"))
    assert grace > _graceful_timeout(tmp_path)


def test_redis_and_postgres(services: dict[str, Any]) -> None:
    assert services["redis"]["image"] == "redis:7"
    assert services["redis"]["command"] == ["redis-server", "--save", "", "--appendonly", "no"]
    postgres = services["postgres"]
    assert postgres["image"] == "postgres:15"
    assert postgres["environment"]["POSTGRES_USER"] == "accounts"
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert any(volume.endswith(":/var/lib/postgresql/data") for volume in postgres["volumes"])

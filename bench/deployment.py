"""Sizing figures for docs/DEPLOYMENT.md, on the deployment test's topology (tests/deploy/):
wrk at 16 connections through HAProxy to two instances of two workers, straight to one instance
(both through PgBouncer), and to one instance that connects to PostgreSQL directly; the API rate
limit counting in Redis, PostgreSQL on its durable defaults; PgBouncer's server connections
sampled during each run (0 for the direct instance, which does not use it).

    python -m bench.deployment [--duration 8]

Prints one table row per target and scenario. On one machine the two "machines" share its
cores: the figures say what the extra hops cost and how many connections a load needs, not
what a second machine adds.
"""

from __future__ import annotations

import argparse
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx

from app import demo
from bench.load import run_wrk
from bench.scenarios import LOGINS, TOKEN_PATH, Scenario
from bench.server import descendants
from tests.deploy.topology import Bouncer, Instance, Topology, topology

GET_ONE = Scenario("get_one", "user", paths=("/api/v3_0/accounts/1",))
SPREAD = (1, 2, 3, 4, 5, 6, 7)  # every demo account
PATCH_SPREAD = Scenario(
    "patch_spread",
    "admin",
    method="PATCH",
    paths=tuple(f"/api/v3_0/accounts/{i}" for i in SPREAD),
    patch_ids=SPREAD,
)


def server_connections(bouncer: Bouncer) -> int:
    """PgBouncer's server connections to the accounts database now (active, idle, used...)."""
    result = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", str(bouncer.port), "-U", "postgres", "-At", "-F,",
         "-c", "SHOW POOLS", "pgbouncer"],
        capture_output=True, text=True, timeout=10, check=True,
    )  # fmt: skip
    total = 0
    for line in result.stdout.splitlines():
        fields = line.split(",")
        if fields[0] == "accounts":
            # database,user,cl_active,cl_waiting,cl_active_cancel_req,cl_waiting_cancel_req,
            # sv_active,sv_active_cancel,sv_being_canceled,sv_idle,sv_used,sv_tested,sv_login
            total += sum(int(f) for f in fields[6:13])
    return total


@contextmanager
def sampling(read: Callable[[], int]) -> Iterator[list[int]]:
    samples: list[int] = []
    done = threading.Event()

    def loop() -> None:
        while not done.wait(0.25):
            samples.append(read())

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        done.set()
        thread.join()


def token(base_url: str, email: str) -> str:
    response = httpx.post(
        f"{base_url}{TOKEN_PATH}", json={"email": email, "password": demo.DEMO_PASSWORD}
    )
    response.raise_for_status()
    return str(response.json()["auth_token"])


def measure(deployed: Topology, duration: float) -> None:
    app_pids = lambda: [  # noqa: E731
        pid
        for instance in deployed.instances.values()
        if instance.process is not None
        for pid in (instance.process.pid, *descendants(instance.process.pid))
    ]
    # A third instance beside the topology, straight to PostgreSQL: what PgBouncer costs.
    direct_env = {
        **deployed.instances["app1"].env,
        "DATABASE_URL": deployed.cluster.url.rsplit("/", 1)[0] + "/accounts",
        "DB_PGBOUNCER": "false",
    }
    straight = Instance("straight", direct_env)
    straight.start()
    targets = {
        "HAProxy, 2 instances x 2 workers, PgBouncer": deployed.balancer.base_url,
        "1 instance x 2 workers, PgBouncer": deployed.instances["app1"].base_url,
        "1 instance x 2 workers, PostgreSQL directly": straight.base_url,
    }
    print(
        "| target | scenario | req/s | p50 ms | p99 ms | errors | "
        "PgBouncer server connections (max) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for target, base_url in targets.items():
        for scenario in (GET_ONE, PATCH_SPREAD):
            auth = token(base_url, LOGINS[scenario.role])
            with sampling(lambda: server_connections(deployed.bouncer)) as samples:
                result = run_wrk(
                    base_url,
                    scenario,
                    auth,
                    duration=duration,
                    connections=16,
                    threads=2,
                    app_pids=app_pids,
                    pg_pids=deployed.cluster.server_pids,
                    pg_sessions=lambda: None,
                )
            print(
                f"| {target} | {scenario.name} | {result.requests_per_s:.0f} | "
                f"{result.p50_ms:.1f} | {result.p99_ms:.1f} | {result.error_count} | "
                f"{max(samples, default=0)} |"
            )
    straight.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=8.0)
    args = parser.parse_args()
    with topology("100000000/minute") as deployed:
        measure(deployed, args.duration)


if __name__ == "__main__":
    main()

"""`python -m tests.deploy [API_RATE_LIMIT]`: the deployment test's topology, by hand.

Starts PostgreSQL, PgBouncer, Redis, two instances of two workers and HAProxy on loopback (as
`tests/deploy/test_deployment.py` does), prints the balancer's address, the demo log-in and every
process id (to kill under your own load), and stops everything on Ctrl-C. PostgreSQL's address
is printed too, to check afterwards what was written (every acknowledged PATCH has its audit
record).
"""

from __future__ import annotations

import signal
import sys
import time

from tests.deploy.topology import topology


def main(argv: list[str]) -> int:
    limit = argv[0] if argv else "100000/minute"
    with topology(limit) as deployed:
        print(
            f"HAProxy:      {deployed.balancer.base_url}  (admin socket {deployed.balancer.socket})"
        )
        for name, instance in deployed.instances.items():
            assert instance.process is not None
            print(f"{name}:         {instance.base_url}  uvicorn pid {instance.process.pid} "
                  "(its workers are its children)")  # fmt: skip
        assert deployed.bouncer.process is not None
        assert deployed.redis.process is not None
        print(
            f"PgBouncer:    127.0.0.1:{deployed.bouncer.port}  pid {deployed.bouncer.process.pid}"
        )
        print(f"Redis:        {deployed.redis.url}  pid {deployed.redis.process.pid}")
        postmaster = deployed.cluster.server_pids()[0]
        print(f"PostgreSQL:   {deployed.cluster.url.rsplit('/', 1)[0]}/accounts  "
              f"postmaster pid {postmaster}  data {deployed.cluster.data}")  # fmt: skip
        print(f"API_RATE_LIMIT {limit}; log in as test_admin_user@seita.nl / testtest")
        print("Ctrl-C stops everything.")
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

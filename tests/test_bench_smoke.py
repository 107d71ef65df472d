"""`make bench-smoke` inside the suite, so that the benchmark harness cannot rot unnoticed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Brings its own PostgreSQL when the suite runs on SQLite, so `make test` runs it in the
# PostgreSQL pass only; run alone on any backend, it never skips.
pytestmark = pytest.mark.postgres_only


def test_bench_smoke_runs_every_scenario_without_errors(tmp_path: Path) -> None:
    results = tmp_path / "bench-smoke.json"
    env = {key: value for key, value in os.environ.items() if not key.startswith("BENCH_")}
    # The suite's PostgreSQL server if it has one; otherwise (SQLite run) the harness starts a
    # throwaway cluster of its own: the bench measures PostgreSQL only, and never skips.
    given = os.environ.get("TEST_DATABASE_URL", "")
    if given.startswith("postgresql"):
        env["BENCH_DATABASE_URL"] = given
    run = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--json", str(results)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, f"{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
    payload = json.loads(results.read_text())
    scenarios = [scenario for n_run in payload["runs"] for scenario in n_run["scenarios"]]
    assert len(scenarios) >= 10
    for scenario in scenarios:
        assert scenario["failure"] is None, scenario["key"]
        assert scenario["wrk"]["requests"] > 0, scenario["key"]
        assert sum(scenario["wrk"]["errors"].values()) == 0, scenario["key"]
        assert scenario["floor"]["requests"] > 0, scenario["key"]
        assert scenario["floor"]["errors"] == 0, scenario["key"]
        # The FastAPI floor served the same load, from the statements and answers captured
        # (all but the log-in, whose floor is a password hash rather than SQL).
        framework = scenario["framework"]
        if scenario["key"].startswith("token/"):
            assert framework is None
        else:
            assert framework["requests"] > 0, scenario["key"]
            assert sum(framework["errors"].values()) == 0, scenario["key"]
    # The invitations' mails reached the harness's SMTP sink (the run fails if none did).
    invites = [scenario for scenario in scenarios if scenario["key"] == "invite/admin"]
    assert invites, "the invite scenario did not run"
    assert all(scenario["mails"] > 0 for scenario in invites)

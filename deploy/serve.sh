#!/bin/sh
# The image's command (Dockerfile): uvicorn (as accounts-serve, app/serve.py: its workers share
# keep-alive connections evenly) with WEB_CONCURRENCY workers, one per core unless
# set. `nproc` counts the cores this container may run on, not a CPU quota: under Kubernetes
# limits set WEB_CONCURRENCY explicitly (deploy/k8s/deployment.yaml).
# exec: uvicorn is PID 1 and gets SIGTERM itself; it stops accepting, lets in-flight requests
# finish for up to 25 s, then exits (the orchestrator's grace period is 30 s).
# Uvicorn reads FORWARDED_ALLOW_IPS (the proxy it trusts with X-Forwarded-For) from the
# environment; extra arguments are passed on.
set -eu
exec accounts-serve app.main:app \
    --host 0.0.0.0 --port 8000 \
    --workers "${WEB_CONCURRENCY:-$(nproc)}" \
    --loop uvloop --http httptools \
    --proxy-headers \
    --timeout-graceful-shutdown 25 \
    "$@"

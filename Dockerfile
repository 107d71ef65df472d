# A small image that serves the accounts service with uvicorn (deploy/serve.sh).
# Migrations run once per release (`python -m app.cli db upgrade`), not in every replica.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /srv
COPY pyproject.toml README.md alembic.ini ./
COPY alembic ./alembic
COPY app ./app
# uvicorn[standard] (a dependency) brings uvloop and httptools; the import fails the build if
# they ever stop coming with it. A numeric user, so Kubernetes can check runAsNonRoot.
RUN pip install . \
    && python -c "import uvloop, httptools" \
    && groupadd --system --gid 10001 accounts \
    && useradd --system --uid 10001 --gid 10001 --no-create-home accounts
COPY deploy/serve.sh ./deploy/serve.sh
USER 10001:10001
EXPOSE 8000
STOPSIGNAL SIGTERM
CMD ["/bin/sh", "/srv/deploy/serve.sh"]

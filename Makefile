# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?= -q

# Shell for a recipe that has collected Debian package names in $$missing: installs them when we
# are root with apt-get, else says what to install and fails.
INSTALL_MISSING = if [ -n "$$missing" ]; then \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing$$missing from Debian's packages"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else \
		echo "Please install:$$missing (e.g. sudo apt-get install$$missing)"; exit 1; \
	fi; \
fi

.PHONY: install system-deps run test test-postgres test-sqlite lint format openapi clean bench bench-smoke bench-deps

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

## What the suite needs from Debian: PostgreSQL's server binaries (for a throwaway cluster),
## Chromium (the Swagger UI browser test), wrk (the bench harness's smoke test), Redis (the
## shared limits), Node.js with npm (the TypeScript client test), and PgBouncer and HAProxy (the
## deployment test). Installed when missing and we may; else explained.
system-deps:
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 \
		|| [ -n "$$TEST_DATABASE_URL" ] || missing="$$missing postgresql"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v wrk >/dev/null 2>&1 || missing="$$missing wrk"; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	command -v node >/dev/null 2>&1 || missing="$$missing nodejs"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	PATH="$$PATH:/usr/sbin:/sbin" command -v pgbouncer >/dev/null 2>&1 || missing="$$missing pgbouncer"; \
	PATH="$$PATH:/usr/sbin:/sbin" command -v haproxy >/dev/null 2>&1 || missing="$$missing haproxy"; \
	$(INSTALL_MISSING)

## Serve the demo on the embedded SQLite default, with Swagger UI at /api/v3_0/docs.
run: install
	$(PY) -m app.cli db upgrade
	$(PY) -m app.cli add demo
	$(PY) -m app.demo
	@echo "Serving on http://$(HOST):$(PORT) — Swagger UI: http://$(HOST):$(PORT)/api/v3_0/docs"
	$(VENV)/bin/uvicorn app.main:app --host $(HOST) --port $(PORT)

## The whole suite on PostgreSQL (TEST_DATABASE_URL, or a throwaway cluster), then on SQLite.
test: test-postgres test-sqlite

test-postgres: install system-deps
	$(PY) -m tests.postgres -- $(PY) -m pytest $(PYTEST_ARGS)

# Tests marked postgres_only bring or need a PostgreSQL server of their own (faults, load,
# the bench harness): the PostgreSQL pass runs them; repeating them here would test nothing new.
test-sqlite: install system-deps
	TEST_DATABASE_URL=sqlite $(PY) -m pytest -m "not postgres_only" $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check app tests alembic bench
	$(VENV)/bin/ruff format --check app tests alembic bench
	$(VENV)/bin/mypy app

format: install
	$(VENV)/bin/ruff check --fix app tests alembic bench
	$(VENV)/bin/ruff format app tests alembic bench

## Regenerate the committed OpenAPI document (a test fails while it is stale).
openapi: install
	$(PY) -m app.openapi

clean:
	rm -rf $(VENV) accounts.db .pytest_cache .mypy_cache .ruff_cache

## Benchmarks (docs/BENCHMARKS.md): wrk against uvicorn on a seeded PostgreSQL database
## (BENCH_DATABASE_URL's server, else a throwaway cluster on PostgreSQL's durable defaults), the
## API rate limit counting in Redis, beside the floor of the same SQL replayed through asyncpg. N=1000 and 10000 by default; BENCH_NS="1000 10000 100000" for more.
bench: install bench-deps
	$(PY) -m bench.run

## The harness itself on N=200 with 1 s per scenario: no docs; fails if any scenario errors.
bench-smoke: install bench-deps
	$(PY) -m bench.run --smoke

## What the bench needs from Debian: wrk, Redis (the API rate limit counts there, as deployed),
## and PostgreSQL's server binaries unless BENCH_DATABASE_URL names a server. Installed when
## missing and we may; else explained.
bench-deps:
	@missing=""; \
	command -v wrk >/dev/null 2>&1 || missing="$$missing wrk"; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 \
		|| [ -n "$$BENCH_DATABASE_URL" ] || missing="$$missing postgresql"; \
	$(INSTALL_MISSING)

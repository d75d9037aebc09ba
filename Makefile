# The front door: `make run` starts the site, `make test` proves it.
.PHONY: run restart-postgres restart-pgbouncer test lint typecheck pytest bootstrap \
	bootstrap-test bootstrap-dev bench bench-quick manage clean

PY := .venv/bin/python

# DEVSTACK_PGBOUNCER_PROCESSES=N make run: N PgBouncer processes on one port.
run: bootstrap
	$(PY) -m devstack

# Restart a server of the running `make run` without stopping it (0 failed
# requests): PostgreSQL inside pgbouncer_maintenance (PAUSE, restart, RESUME),
# PgBouncer by an online takeover of its sockets; with
# DEVSTACK_PGBOUNCER_PROCESSES=N (processes sharing the port), each in turn.
restart-postgres:
	$(PY) -m devstack restart postgres

restart-pgbouncer:
	$(PY) -m devstack restart pgbouncer

test: bootstrap-test lint typecheck pytest

bootstrap:
	@devstack/bootstrap.sh

bootstrap-test:
	@devstack/bootstrap.sh test

bootstrap-dev:
	@devstack/bootstrap.sh dev

# Load benchmarks (never part of make test): every way to pool, side by side.
# bench writes bench/results/latest.* and then bench/README.md from the results;
# bench-quick writes bench/results/quick.* only.
bench: bootstrap-dev
	$(PY) -m bench.harness
	$(PY) -m bench.readme

bench-quick: bootstrap-dev
	$(PY) -m bench.harness --quick

lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

typecheck:
	.venv/bin/mypy .

pytest:
	$(PY) -m pytest $(PYTEST_ARGS)

# Any manage.py command against the stack `make run` started: make manage ARGS=shell
manage: bootstrap
	set -a && . "$${DEVSTACK_DIR:-.devstack}/stack.env" && set +a && $(PY) manage.py $(ARGS)

clean:
	rm -rf .venv staticfiles

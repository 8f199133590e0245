# The two commands of the README. Both create the virtual environment (.venv) on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: up test lint bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip==25.3
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

up: $(STAMP)
	$(BIN)/enroll up

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

test: lint
	$(BIN)/pytest

# The benchmarks of docs/performance.md: each prints its targets with ✓ or ✗; all run, then any ✗ fails.
# Needs 127.0.0.1:7233 and :8233 free (no `make up` running) and PostgreSQL at BENCH_POSTGRES.
BENCH_POSTGRES ?= postgresql+asyncpg://postgres@127.0.0.1:5432/test
bench: $(STAMP)
	@failed=0; \
	$(BIN)/python -m bench.pipeline --postgres $(BENCH_POSTGRES) || failed=1; \
	$(BIN)/python -m bench.worker_memory || failed=1; \
	$(BIN)/python -m bench.lifecycle || failed=1; \
	$(BIN)/python -m bench.list_enrollments --postgres $(BENCH_POSTGRES) || failed=1; \
	$(BIN)/python -m bench.credentials --postgres $(BENCH_POSTGRES) || failed=1; \
	$(BIN)/python -m bench.webhooks --postgres $(BENCH_POSTGRES) || failed=1; \
	exit $$failed

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis

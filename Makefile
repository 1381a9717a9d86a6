# Thin wrappers: every target works on a fresh clone (it builds .venv when missing).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test lint typecheck contracts pytest bench demo clean reliability

$(STAMP): pyproject.toml setup.py src/tidings/_speedups.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP) lint typecheck contracts pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples

typecheck: $(STAMP)
	$(BIN)/mypy src examples

contracts: $(STAMP)
	$(BIN)/lint-imports

# The official AsyncAPI parser (npm), which the tests validate `tidings asyncapi` output with.
NODE_STAMP := tools/asyncapi/node_modules/.installed

$(NODE_STAMP): tools/asyncapi/package.json tools/asyncapi/package-lock.json
	cd tools/asyncapi && npm ci --silent --no-audit --no-fund
	touch $(NODE_STAMP)

# The dashboard's browser test drives Debian's Chromium (through Playwright, which downloads nothing).
# Installed once when missing and we may (root with apt-get); otherwise those tests skip loudly
# on a developer's machine and fail under CI=true.
CHROMIUM := /usr/bin/chromium

$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get install -y -qq chromium >/dev/null 2>&1 || \
		(apt-get update -qq && apt-get install -y -qq chromium >/dev/null); \
	else echo "note: $(CHROMIUM) is missing: the dashboard's browser tests will skip"; fi

pytest: $(STAMP) $(NODE_STAMP) $(CHROMIUM)
	$(BIN)/pytest $(PYTEST_ARGS)

BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python bench/storage.py $(STORAGE_ARGS)
	$(BIN)/python bench/e2e.py $(E2E_ARGS)

# The reliability suite at full size (tests/reliability at CI size runs in `make test`): kill -9,
# power loss, corruption, full disk, EIO, clock jumps, fuzzing (atheris), exhaustion, a 30-minute soak.
# Figures go to bench/results/reliability-full-*.json and docs/reliability.md.
RELIABILITY_STAMP := $(VENV)/.installed-reliability

$(RELIABILITY_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,reliability]'
	touch $(RELIABILITY_STAMP)

reliability: $(RELIABILITY_STAMP)
	$(BIN)/python bench/reliability.py $(RELIABILITY_ARGS)

# The seed's shop on the embedded default: a broker on 127.0.0.1:7400 with its data in
# ./.tidings, five services with their own SQLite databases in ./.tidings/shop.
# `make demo BROKER=nats://127.0.0.1:4222` (or redis://..., tidings://...) runs the same services,
# unchanged, on a broker that is already running.
BROKER ?=
demo: $(STAMP)
ifeq ($(strip $(BROKER)),)
	$(BIN)/python -m examples.shop.run --start-broker .tidings --data .tidings/shop $(DEMO_ARGS)
else
	$(BIN)/python -m examples.shop.run --broker '$(BROKER)' --data .tidings/shop $(DEMO_ARGS)
endif

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

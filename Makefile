# OpenSpine — `make help` lists the targets.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
DATA_DIR ?= data/demo
PORT ?= 8000
PATIENTS ?= 10000
BENCH_PATIENTS ?= 100000
BENCH_SECONDS ?= 10
#: Web workers of the server (and of the ceiling): 2 on a 2-core machine (ADR 0014).
BENCH_WORKERS ?= 2
#: Rounds of each PDS and MESH comparison, the servers taking turns (the median ratio is kept).
BENCH_ROUNDS ?= 3

.PHONY: help install run test lint typecheck unit contract api e2e bench bench-mesh bench-scale reliability clean

help: ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(BIN)/openspine: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

install: $(BIN)/openspine ## Create .venv and install OpenSpine with its dev tools

run: install ## Run the platform with demo data on the embedded store (DATA_DIR, PORT, PATIENTS)
	$(BIN)/openspine demo --data-dir $(DATA_DIR) --port $(PORT) --patients $(PATIENTS)

lint: install ## ruff
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install ## mypy --strict on the package, its tests and the benchmark harness
	$(BIN)/mypy

test: install lint typecheck ## Lint, type-check and run every test (PostgreSQL contract tests need OPENSPINE_TEST_POSTGRES_URL)
	$(BIN)/pytest

bench: install ## The harness: bulk load, PDS read, search and the Spine mix against the raw ASGI ceiling (needs wrk); table and plot in docs/benchmarks.*
	$(BIN)/python -m bench.run --scenario load --patients $(BENCH_PATIENTS)
	$(BIN)/python -m bench.run --scenario read --patients $(BENCH_PATIENTS) --reuse-store --duration $(BENCH_SECONDS) --workers $(BENCH_WORKERS) --rounds $(BENCH_ROUNDS)
	$(BIN)/python -m bench.run --scenario search --patients $(BENCH_PATIENTS) --reuse-store --duration $(BENCH_SECONDS) --workers $(BENCH_WORKERS) --rounds $(BENCH_ROUNDS)
	$(BIN)/python -m bench.run --scenario mix --patients $(BENCH_PATIENTS) --reuse-store --duration $(BENCH_SECONDS) --workers $(BENCH_WORKERS) --rounds $(BENCH_ROUNDS)
	$(BIN)/python -m bench.run --scenario mix --patients $(BENCH_PATIENTS) --reuse-store --duration $(BENCH_SECONDS) --workers $(BENCH_WORKERS) --rounds $(BENCH_ROUNDS) --connections 64
	$(BIN)/python -m bench.report --plot docs/benchmarks.png

bench-mesh: install ## MESH against NHS's mesh-sandbox (PyPI) in the same run: 1 KiB send and receive+ack rates (wrk: 3 rounds, the servers in turns, median ratio), a 1 GiB transfer
	$(BIN)/python -m bench.mesh --duration 8 --processes 4 --big-mib 1024 --workers $(BENCH_WORKERS) --rounds $(BENCH_ROUNDS)

bench-scale: install ## PDS read and search on a 10M-patient store against the 100k one (about 25 min to build; ~25 GB)
	OPENSPINE_BENCH_RESULTS=bench/results/scale $(BIN)/python -m bench.run --scenario load --patients 10000000
	OPENSPINE_BENCH_RESULTS=bench/results/scale $(BIN)/python -m bench.run --scenario read --patients 10000000 --reuse-store --duration $(BENCH_SECONDS) --workers $(BENCH_WORKERS)
	OPENSPINE_BENCH_RESULTS=bench/results/scale $(BIN)/python -m bench.run --scenario search --patients 10000000 --reuse-store --duration $(BENCH_SECONDS) --connections 4 --workers $(BENCH_WORKERS)
	$(BIN)/python -m bench.run --scenario read --patients $(BENCH_PATIENTS) --reuse-store --duration $(BENCH_SECONDS) --workers $(BENCH_WORKERS)
	$(BIN)/python -m bench.run --scenario search --patients $(BENCH_PATIENTS) --reuse-store --duration $(BENCH_SECONDS) --connections 4 --workers $(BENCH_WORKERS)

reliability: install ## The reliability suite at full length (>= 10,000 fuzzed requests, 6 SIGKILLs a store); figures in bench/results/reliability (PostgreSQL parts need OPENSPINE_TEST_POSTGRES_URL)
	OPENSPINE_FUZZ_EXAMPLES=300 OPENSPINE_FUZZ_RANDOM=1 OPENSPINE_CRASH_KILLS=6 OPENSPINE_RELIABILITY_REPORT=bench/results/reliability \
		$(BIN)/pytest tests/reliability --timeout 2400

clean: ## Remove the virtualenv, caches and demo data
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache

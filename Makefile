# psop-hub: `make run` runs the hub on this machine, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export HUB_DATABASE_URL ?= postgresql://root@127.0.0.1:5432/psop_hub
export HUB_AMQP_URL ?= amqp://guest:guest@127.0.0.1:5672/%2F

.PHONY: install run test unit lint format bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

run: install
	$(BIN)/hub run

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: install lint
	$(BIN)/pytest

unit: install
	$(BIN)/pytest tests/unit

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Every benchmark, one table (bench/run.py): BENCH_ARGS="--quick", "--only rest,peer", "--preload 1000000".
bench: install
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# --- containers (docs/operations.md) -------------------------------------------------------
.PHONY: images-offline test-containers rollout

# Local stand-ins for every image docker-compose.yml uses, from Debian packages; writes .env.
images-offline:
	docker/images-offline.sh

# The container tests: build and start the stack from nothing, REST/SOAP/file drop through lb, faults.
test-containers: install
	HUB_TEST_CONTAINERS=1 $(BIN)/pytest tests/containers

# Rebuild the hub image and replace each hub container one at a time, waiting for health.
rollout:
	docker/rollout.sh

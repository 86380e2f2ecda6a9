# dockyard: `make run` starts the daemon, `make test` runs every test.
# Both install what is missing first (as root, on Debian 12).

PYTHON  ?= /usr/bin/python3
VENV    := .venv
SOCKET  ?= /run/dockyard.sock
DATA    ?= /var/lib/dockyard

.PHONY: setup setup-test run test test-unit test-integration test-v2 test-eco eco-lane lint bench bench-scale bench-load bench-streams fuzz fuzz-lane

# Debian packages first (python3-venv among them), then the virtualenv.
setup:
	@bash scripts/setup-host.sh
	@$(MAKE) --no-print-directory $(VENV)/.stamp

setup-test:
	@DOCKYARD_TEST_PKGS=1 bash scripts/setup-host.sh
	@$(MAKE) --no-print-directory $(VENV)/.stamp

$(VENV)/.stamp: requirements-dev.txt pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -r requirements-dev.txt
	$(VENV)/bin/pip install -q --no-build-isolation --no-deps -e .
	@touch $@

run: setup
	$(VENV)/bin/dockyard daemon -H unix://$(SOCKET) --data-root $(DATA)

test: setup-test
	@$(MAKE) --no-print-directory lint
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider tests/unit tests/integration
	@# in CI the v2 lane must run; elsewhere it is skipped, loudly, without QEMU
	@bash tests/v2lane/suite.sh $(if $(CI),,--if-installable)
	@$(MAKE) --no-print-directory fuzz-lane
	@$(MAKE) --no-print-directory eco-lane

# The clients people already use (Docker Compose v2 and v1, testcontainers)
# driving real applications through dockyard (tests/eco/README.md)
test-eco: setup-test
	@$(MAKE) --no-print-directory eco-lane

eco-lane: $(VENV)/.eco-stamp
	@PYTHON=$(PYTHON) bash tests/eco/clients.sh
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider tests/eco

$(VENV)/.eco-stamp: requirements-eco.txt requirements-dev.txt $(VENV)/.stamp
	$(VENV)/bin/pip install -q -r requirements-dev.txt -r requirements-eco.txt
	@touch $@

# cgroup v2: the v2 suite against a daemon in a pure cgroup v2 VM (tests/v2lane)
test-v2: setup-test
	@bash tests/v2lane/suite.sh

# API fuzzing against Docker's own description of the Engine API, with the
# CI budget and seed unless DOCKYARD_FUZZ_* say otherwise (tests/fuzz/README.md)
fuzz: setup
	@$(MAKE) --no-print-directory fuzz-lane

fuzz-lane: $(VENV)/.fuzz-stamp
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider --timeout=$(FUZZ_TIMEOUT) tests/fuzz

FUZZ_TIMEOUT ?= 900

$(VENV)/.fuzz-stamp: requirements-fuzz.txt requirements-dev.txt $(VENV)/.stamp
	$(VENV)/bin/pip install -q -r requirements-dev.txt -r requirements-fuzz.txt
	@touch $@

test-unit: $(VENV)/.stamp
	$(VENV)/bin/python -m pytest -q tests/unit

# ruff, mypy (the backend protocols are checked against their engine
# implementations), then the layering contract (tests/unit/test_layering.py:
# what may import what, no import cycles, no module past 600 lines)
lint: $(VENV)/.stamp
	$(VENV)/bin/ruff check dockyard tests
	$(VENV)/bin/mypy dockyard
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider tests/unit/test_layering.py

bench: setup
	$(VENV)/bin/python bench/run.py

# 500 running containers (SCALE="--count 50" for a quicker look, "--dockerd" beside Docker)
bench-scale: setup
	$(VENV)/bin/python bench/scale_bench.py $(SCALE)

# 50 `docker events` subscribers while 20 clients loop on `docker run --rm`
# for a minute, against dockyard and (when installed) dockerd
bench-load: setup
	$(VENV)/bin/python bench/load_bench.py

# logs, exec, attach, cp, export, save/load throughput and the daemon's RSS
# while they stream, side by side with a private dockerd
bench-streams: setup
	$(VENV)/bin/python bench/stream_bench.py

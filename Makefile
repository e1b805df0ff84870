# The crash-proof lab's front door. `make help` lists the targets.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

# The first Python 3.11+ on PATH: python3, or a newer one beside an older python3
# (Ubuntu 22.04's python3 is 3.10; its python3.11 package is enough).
ifndef PYTHON
PYTHON := $(shell for p in python3 python3.13 python3.12 python3.11; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; exit; }; \
	done; echo python3)
endif
VENV := .venv
COMPOSE := docker compose -f compose/compose.yaml
# Where the learner's browser reaches the lab (the ports in compose/compose.yaml).
UI_URL := http://localhost:$(or $(TEMPORAL_UI_PORT),8080)
BANK_URL := http://localhost:$(or $(BANK_PORT),8081)
# OBSERVE=1 adds Prometheus (the observe profile); a plain `make up` starts without it.
OBSERVE_PROFILE := $(if $(OBSERVE),--profile observe)
PROMETHEUS_URL := http://localhost:$(or $(PROMETHEUS_PORT),9090)

# `make transfer` options, passed to the starter when set.
TRANSFER_ARGS := $(if $(FROM),--from $(FROM)) $(if $(TO),--to $(TO)) \
	$(if $(AMOUNT),--amount $(AMOUNT)) $(if $(ATTEMPTS),--attempts $(ATTEMPTS)) \
	$(if $(REFERENCE_ID),--reference-id $(REFERENCE_ID)) $(if $(NO_WAIT),--no-wait)

SAY := @printf '\n==> %s\n'

.PHONY: help
help: ## Show this list
	@echo "The crash-proof lab. Start with 'make up', then 'make transfer'."
	@echo
	@grep -hE '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | \
		awk -F':.*## ' '{ printf "  make %-25s %s\n", $$1, $$2 }'
	@echo
	@echo "The levers (python -m crashlab --help for every option):"
	@if [ -x $(VENV)/bin/python ]; then $(VENV)/bin/python -m crashlab.make --help-lines; \
	else echo "  make kill, pause, disconnect, fault, link... ('make build' lists them all here)"; fi
	@echo
	@echo "  Transfer options: make transfer AMOUNT=100 FROM=85-150 TO=43-812 ATTEMPTS=1 NO_WAIT=1"

.PHONY: up
up: build ## Build what changed, start the lab, wait until every service is healthy (OBSERVE=1: and Prometheus)
	@$(if $(OBSERVE),compose/prometheus/build-prometheus.sh)
	$(SAY) "Starting Temporal, the bank and the worker$(if $(OBSERVE), (and Prometheus))..."
	@# Published beyond 127.0.0.1 (LAB_BIND_ADDRESS), the bank's fault switch needs a
	@# token: LAB_TOKEN, or one made once and kept in build/bank-control-token.
	@export BANK_CONTROL_TOKEN="$$($(LAB) token --for-up)"; \
	$(COMPOSE) $(OBSERVE_PROFILE) up --detach --wait --quiet-pull || { \
		echo; echo "The lab did not become healthy. What is running:"; $(COMPOSE) ps; \
		echo "Look at 'make logs' for the reason."; exit 1; }; \
	echo; \
	echo "The lab is up."; \
	echo "  Temporal UI   $(UI_URL)"; \
	echo "  Bank          $(BANK_URL)/accounts   (API docs: $(BANK_URL)/docs)"; \
	echo "  Temporal gRPC localhost:$(or $(TEMPORAL_PORT),7233)"; \
	$(if $(OBSERVE),echo "  Prometheus    $(PROMETHEUS_URL)   (metrics of every service; charts: make panel, then /dashboard)";) \
	$(LAB) token --explain
	@echo
	@echo "Next: 'make transfer' moves \$$250 from 85-150 to 43-812; 'make help' lists the rest."

.PHONY: down
down: ## Stop the lab; balances and workflow history are kept
	@$(COMPOSE) --profile tools --profile observe down
	@echo "Stopped. Your data is kept: 'make up' resumes; 'make clean' deletes it."

.PHONY: clean
clean: ## Stop the lab and delete its data (balances back to the start, history gone)
	@$(COMPOSE) --profile tools --profile observe down --volumes
	@echo "Stopped and wiped. 'make up' starts fresh: 85-150 has \$$2000, 43-812 has \$$0."

.PHONY: transfer
transfer: ## Move $250 from 85-150 to 43-812 and print the result
	@$(COMPOSE) run --rm --no-deps starter transfer $(TRANSFER_ARGS)

.PHONY: print-numbers
print-numbers: ## Run (or re-attach to) the module-1 print-numbers workflow
	@$(COMPOSE) run --rm --no-deps starter print-numbers

.PHONY: balances
balances: ## Show every account's balance
	@$(COMPOSE) run --rm --no-deps starter balances

.PHONY: logs
logs: ## Follow the services' logs (Ctrl+C to stop following)
	@$(COMPOSE) logs --follow --tail=50

.PHONY: ps
ps: ## Show each service and its health
	@$(COMPOSE) ps

# --- levers: break the lab on purpose (.venv/bin/crashlab --help for all options) ---

LAB := $(VENV)/bin/crashlab

.PHONY: status
status: $(VENV)/.installed ## One screen: services, open workflows, pollers, balances, ledger checks
	@$(LAB) status

.PHONY: check
check: $(VENV)/.installed ## Prove from the ledger that no money was lost or moved twice
	@$(LAB) check

# Every lever of the catalogue (crashlab/levers.py) and its undo is a target, `make kill
# SERVICE=worker`, `make link FROM=worker TO=bank DELAY_MS=300` and the rest, with no rule
# here: the catalogue says which targets each lever answers to and which variables become
# which options (crashlab/make.py), and `make help` lists them. A new lever needs no edit.
.DEFAULT:
	@$(MAKE) -s $(VENV)/.installed
	@$(VENV)/bin/python -m crashlab.make $@

.PHONY: panel
panel: $(VENV)/.installed ## Every lever on a web page, with the transfers and a timeline (PANEL_PORT=8090)
	@# Chart.js for the dashboard, from Debian's libjs-chart.js, once; the panel runs without it.
	@$(VENV)/bin/python -m crashlab.panel.chartjs || true
	@$(VENV)/bin/python -m crashlab.panel

# --- experiments: the source documents' steps, run and proven on the real stack ---

EXPERIMENT := $(VENV)/bin/python -m crashlab.experiments

.PHONY: experiments
experiments: $(VENV)/.installed ## Run every experiment below in order (about 4 min; QUICK=1: 2.5 min)
	@$(EXPERIMENT) all $(if $(QUICK),--quick)

.PHONY: experiment-print-numbers
experiment-print-numbers: $(VENV)/.installed ## Module 1: kill the worker mid-count, it resumes at the next number
	@$(EXPERIMENT) print-numbers $(ARGS)

.PHONY: experiment-crash
experiment-crash: $(VENV)/.installed ## Kill the worker during withdraw, then deposit: money moves once
	@$(EXPERIMENT) crash $(ARGS)

.PHONY: experiment-bugfix
experiment-bugfix: $(VENV)/.installed ## Break deposit, watch it retry, fix it live (switch and code edit)
	@$(EXPERIMENT) bugfix $(ARGS)

.PHONY: experiment-compensation
experiment-compensation: $(VENV)/.installed ## One attempt, deposit fails for good: the refund runs
	@$(EXPERIMENT) compensation $(ARGS)

.PHONY: experiment-partition
experiment-partition: $(VENV)/.installed ## Pause Temporal, cut the bank off: all transfers complete
	@$(EXPERIMENT) partition $(ARGS)

.PHONY: experiment-link
experiment-link: $(VENV)/.installed ## A slow link to Temporal, then the bank's answers lost: nothing lost or doubled
	@$(EXPERIMENT) link $(ARGS)

.PHONY: experiment-task-queue
experiment-task-queue: $(VENV)/.installed ## A mistyped task queue: the lab spots the stall, the fix ends it
	@$(EXPERIMENT) task-queue $(ARGS)

.PHONY: experiment-versioning
experiment-versioning: $(VENV)/.installed ## Change the workflow under running transfers: non-determinism, then workflow.patched
	@$(EXPERIMENT) versioning $(ARGS)

.PHONY: replay
replay: $(VENV)/.installed ## Would the worker's code still run every workflow? Replays the lab's histories (DIR=tests/histories: saved ones)
	@$(VENV)/bin/python -m crashlab.replay $(DIR)

.PHONY: soak
soak: build ## Chaos soak: 300 transfers under 30 seeded faults, invariants checked all along (SEED=, OWN_LAB=1)
	@$(VENV)/bin/python -m crashlab.soak $(if $(SEED),--seed $(SEED)) \
		$(if $(TRANSFERS),--transfers $(TRANSFERS)) $(if $(WORKERS),--workers $(WORKERS)) \
		$(if $(FAULTS),--faults $(FAULTS)) $(if $(OWN_LAB),--own-lab) $(ARGS)

.PHONY: bench
bench: build $(VENV)/.test-tools ## Measure start-up, recovery, throughput and memory (about 25 min; not a test; FIRST_BUILD=1 also times a build from nothing)
	@$(VENV)/bin/python -m crashlab.bench $(if $(RUNS),--runs $(RUNS)) $(if $(FIRST_BUILD),--first-build) \
		$(if $(KILLS),--kills $(KILLS)) $(if $(STREAM_RATE),--rate $(STREAM_RATE))

.PHONY: test
test: lint build $(VENV)/.test-tools ## Run every test: unit, then the real stack through testcontainers
	@tests/install-chromium.sh
	@$(VENV)/bin/python -m crashlab.panel.chartjs
	@compose/prometheus/build-prometheus.sh
	$(SAY) "Running the tests (the stack tests start their own copy of the lab)..."
	@$(VENV)/bin/pytest

.PHONY: test-hosted
test-hosted: bundle $(VENV)/.test-tools ## Play the track on fresh VMs, from the bundle offline and from a clone (6-13 min)
	$(SAY) "Booting fresh VMs (containers with their own Docker engine) and playing the track..."
	@rm -f build/test-hosted.json
	@$(VENV)/bin/pytest -s tests/hosted || { $(VENV)/bin/python -m tests.hosted.report; exit 1; }
	$(SAY) "What it measured"
	@$(VENV)/bin/python -m tests.hosted.report

.PHONY: lint
lint: $(VENV)/.test-tools ## Check the code with ruff and mypy
	$(SAY) "Linting with ruff and mypy..."
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@$(VENV)/bin/mypy services crashlab tests exercises compose
	@# The example is a project of its own, with its own settings (and its own `tests`).
	@cd examples/external-project && ../../$(VENV)/bin/mypy invoices tests

.PHONY: build
build: ## Build the images (only what changed; the first time from nothing)
	@command -v docker >/dev/null || { echo "Docker is needed: https://docs.docker.com/get-docker/"; exit 1; }
	@docker info >/dev/null 2>&1 || { echo "The Docker engine does not answer: is it running?"; exit 1; }
	@# A bundle's images load while .venv installs: both take seconds, on different resources.
	@$(MAKE) -s -j2 $(VENV)/.installed bundle-images
	@compose/ensure-compose.sh
	@# An unpacked bundle brings its images: loaded, and used as they are unless
	@# the source changed since (exit 3: build, offline, from the bundle's base).
	@rc=0; compose/bundle/load.sh || rc=$$?; \
	if ((rc == 3)); then $(MAKE) images; elif ((rc != 0)); then exit $$rc; fi

.PHONY: bundle-images
bundle-images:
	@compose/bundle/load.sh --load-only

.PHONY: images
images: $(VENV)/.installed
	@compose/base/build-base.sh
	@compose/runtime/build-runtime.sh
	@compose/link/build-link.sh
	$(SAY) "Building the service images (cached layers make this quick)..."
	@# Without the buildx plugin Compose warns that it builds without Bake;
	@# the result is the same, so that one line is dropped.
	@export LAB_INPUTS="$$(compose/bundle/inputs.sh)"; \
	$(COMPOSE) --profile tools build --quiet 2>&1 | { grep -v "buildx isn't installed" || true; }

.PHONY: dist
dist: $(VENV)/.installed ## Build the crashlab wheel (pip install it anywhere: the lab, its CLI, the pytest plugin)
	@rm -rf build/dist
	@$(VENV)/bin/pip wheel --quiet --disable-pip-version-check $(PIP_SOURCE) --no-deps \
		--wheel-dir build/dist .
	@echo "Built $$(ls build/dist/*.whl). In another project: pip install $$(ls build/dist/*.whl)"

.PHONY: bundle
bundle: build ## Pack the lab, its images and wheels into build/crashlab-bundle.tar.gz (for machines with no network)
	@compose/bundle/pack.sh

# A bundle (make bundle) carries the wheels: install from them, with no network.
PIP_SOURCE := $(if $(wildcard bundle/wheels),--no-index --find-links bundle/wheels)

# The host tools: the crashlab package (the levers, the checks, the experiments, the
# pytest plugin), installed editable so the checkout is the code it runs, with its pins.
$(VENV)/.installed: crashlab/requirements.txt pyproject.toml
	$(SAY) "Installing the lab's host tools into $(VENV)..."
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
		echo "Python 3.11 or newer is needed (found: $$($(PYTHON) --version))."; exit 1; }
	@$(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/pip install --quiet --disable-pip-version-check $(PIP_SOURCE) -r crashlab/requirements.txt
	@$(VENV)/bin/pip install --quiet --disable-pip-version-check $(PIP_SOURCE) --no-deps -e .
	@touch $@

# The test tools (pytest, ruff, mypy...), only for make lint and make test.
$(VENV)/.test-tools: tests/requirements.txt services/requirements.txt $(VENV)/.installed
	$(SAY) "Installing the test tools into $(VENV)..."
	@$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	@touch $@

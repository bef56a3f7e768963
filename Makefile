# Leadflow — every verb a newcomer guesses. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
GEN := build/gen
PROTOS := $(shell find protos -name '*.proto')
PROTO_STAMP := $(GEN)/.stamp
SITE := $(shell [ -x $(PY) ] && $(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# A missing broker or store must fail a test quickly, not hang it.
PYTEST_FLAGS := --strict-markers --timeout 60 -p no:cacheprovider --durations=15

.DEFAULT_GOAL := help
.PHONY: help venv protos console run test test-unit test-integration test-e2e test-browser screenshots lint bench images deploy-check clean
CONSOLE_SOURCES := $(shell find console -path console/node_modules -prune -o -path console/dist -prune -o -type f -print 2>/dev/null)
CONSOLE_STAMP := console/dist/index.html
IMAGE ?= ghcr.io/leadflow/leadflow
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)

help: ## list the verbs
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

venv: $(STAMP) ## create .venv and install Leadflow with its pinned dependencies

$(STAMP): pyproject.toml
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@rm -f $(VENV)/.installed-*; touch $@

protos: $(PROTO_STAMP) ## generate the gRPC stubs into build/gen (git-ignored, on the venv's path)

$(PROTO_STAMP): $(STAMP) $(PROTOS)
	@rm -rf $(GEN) && mkdir -p $(GEN)
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=$(GEN) --pyi_out=$(GEN) --grpc_python_out=$(GEN) $(PROTOS)
	@# The same contracts with their comments, for the gateway's OpenAPI descriptions.
	$(PY) -m grpc_tools.protoc -Iprotos --include_source_info --descriptor_set_out=$(GEN)/leadflow.binpb $(PROTOS)
	@echo "$(CURDIR)/$(GEN)" > "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/leadflow_protos.pth"
	@touch $@

console: $(CONSOLE_STAMP) ## build the web console (npm ci + vite build into console/dist, git-ignored)

$(CONSOLE_STAMP): $(CONSOLE_SOURCES)
	cd console && npm ci --no-audit --no-fund --loglevel=error && npm run build
	@touch $@

run: protos console ## bring up RabbitMQ, Redis, SecantusDB and the five services, run the demo, stay up (DEMO=0 skips it)
	$(PY) -m services.devstack run

test: protos console lint deploy-check ## lint, manifests, then unit, integration, e2e and browser tests against the real broker, Redis and Mongo protocol
	$(PY) -m services.devstack prepare-tests
	$(VENV)/bin/nameko test tests/unit tests/integration $(PYTEST_FLAGS)
	$(PY) -m pytest tests/e2e tests/gateway $(PYTEST_FLAGS) --timeout 300 -p no:nameko

test-unit: protos ## pure domain tests, nothing started
	$(VENV)/bin/nameko test tests/unit $(PYTEST_FLAGS)

test-integration: protos ## one service container at a time against real infrastructure
	$(PY) -m services.devstack prepare-tests
	$(VENV)/bin/nameko test tests/integration $(PYTEST_FLAGS)

test-e2e: protos ## the five services as processes, driven through the public gRPC API
	$(PY) -m services.devstack prepare-tests
	$(PY) -m pytest tests/e2e $(PYTEST_FLAGS) --timeout 300 -p no:nameko

test-browser: protos console ## the gateway's HTTP API, its OpenAPI fuzzing and the console in headless Chromium
	$(PY) -m services.devstack prepare-tests
	$(PY) -m pytest tests/gateway $(PYTEST_FLAGS) --timeout 300 -p no:nameko

screenshots: test-browser ## refresh the README's console screenshots (docs/screenshots) from a browser test run
	cp build/screenshots/{inbox,lead,pipeline-blocked,dashboard,admin-forms,inbox-zh,lead-assignment,admin-import,admin-winmodel}.png docs/screenshots/

lint: $(STAMP) ## buf lint (STANDARD and comments) on the contracts, ruff on the Python
	$(VENV)/bin/buf lint
	$(VENV)/bin/ruff check services tests bench

deploy-check: protos ## render and validate the Kubernetes manifests offline; promtool checks and unit-tests the alerts
	$(PY) -m pytest tests/deploy $(PYTEST_FLAGS) -p no:nameko

images: ## build the one service image (its argument picks the service); needs a Docker engine
	docker build -f deploy/Dockerfile -t $(IMAGE):$(VERSION) .

# `make bench SECTIONS=xi` (or SECTIONS=i,ii,xi) runs only those sections of the benchmark.
SECTIONS ?=
bench: protos ## the benchmark: prints a table and writes bench/results/latest.json (SECTIONS=xi: one section)
	$(PY) -m services.devstack prepare-tests
	BENCH_SECTIONS="$(SECTIONS)" $(PY) -m bench

clean: ## remove the venv, generated stubs and local state (.leadflow: embedded database, logs, dev tokens)
	rm -rf $(VENV) build .leadflow *.egg-info

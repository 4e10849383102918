# tggod-services: every entry point a developer or CI needs.
# `make run` and `make test` work as the first command on a fresh clone.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
GEN := protos/gen/python
PROTOS := $(shell find protos/tggod -name '*.proto')
GEN_STAMP := $(GEN)/.generated
SYSTEM_DEPS := ffmpeg:ffmpeg redis-server:redis-server
AGAINST ?= .git\#branch=main,subdir=protos

.PHONY: help setup system-deps proto run test test-fast lint breaking bench k8s-validate images clean

help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 16

setup: system-deps $(STAMP) $(GEN_STAMP) ## virtualenv, Python deps, system deps, generated stubs

system-deps: ## install ffmpeg and redis-server with apt-get when missing
	@missing=""; for pair in $(SYSTEM_DEPS) $(EXTRA_SYSTEM_DEPS); do \
	  bin=$${pair%%:*}; pkg=$${pair#*:}; \
	  command -v "$$bin" >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    echo "installing system packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1; then \
	    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "error: missing system packages:$$missing; install them with your package manager" >&2; exit 1; \
	  fi; \
	fi

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	@# The editable install maps the `tggod` package onto the generated tree,
	@# so that tree must exist (possibly still empty) before pip runs.
	mkdir -p $(GEN)/tggod && touch $(GEN)/tggod/__init__.py
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

$(GEN_STAMP): $(PROTOS) $(STAMP)
	rm -rf $(GEN) && mkdir -p $(GEN)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(PY) -m grpc_tools.protoc -I protos \
	  --python_out=$(GEN) --grpc_python_out=$(GEN) \
	  --mypy_out=$(GEN) --mypy_grpc_out=$(GEN) $(PROTOS)
	find $(GEN)/tggod -type d -exec touch {}/__init__.py \;
	touch $(GEN)/tggod/py.typed $@

proto: $(STAMP) ## regenerate Python messages, gRPC stubs and .pyi stubs
	rm -f $(GEN_STAMP) && $(MAKE) --no-print-directory $(GEN_STAMP)

run: setup ## start redis-server (unless REDIS_URL is set) and both services
	$(PY) deploy/local/devstack.py

test: setup k8s-validate ## the whole test suite against real redis-server, ffmpeg and gRPC
	$(BIN)/pytest -q -p no:cacheprovider

lint: setup ## ruff, strict mypy, buf lint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	cd protos && ../$(BIN)/buf lint

breaking: setup ## buf breaking against main (AGAINST=... to compare elsewhere)
	@if git rev-parse --verify -q main >/dev/null && git cat-file -e main:protos/buf.yaml 2>/dev/null; then \
	  $(BIN)/buf breaking protos --against '$(AGAINST)' && echo "buf breaking: compatible with $(AGAINST)"; \
	else echo "main has no protos/ yet: nothing to compare against"; fi

bench: EXTRA_SYSTEM_DEPS := ffmpegthumbnailer:ffmpegthumbnailer
bench: setup ## benchmarks; print ratios against baselines measured in the same run
	$(PY) -m tests.benchmarks

k8s-validate: setup ## render every kustomize overlay, validate it strictly, lint the Dockerfiles
	$(PY) -m tests.deploy.validate

images: $(STAMP) ## docker build both images (static Dockerfile checks only when no engine runs)
	@version=$$($(PY) -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])'); \
	if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then \
	  for svc in session-service thumbnail-service; do \
	    echo "building tggod/$$svc:$$version"; \
	    DOCKER_BUILDKIT=1 docker build -f deploy/docker/$$svc.Dockerfile -t tggod/$$svc:$$version .; \
	  done; \
	else \
	  echo "images: no Docker engine answers \`docker info\`; not building. Static Dockerfile checks:"; \
	  $(PY) -m tests.deploy.validate --dockerfiles; \
	fi

clean: ## remove the virtualenv, generated code and local run state
	rm -rf $(VENV) $(GEN) .run .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info build dist

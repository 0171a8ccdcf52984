# Modelship: the two commands are `make demo` and `make test`; each does the
# whole set-up on a fresh machine (venv, pip, apt, the local cluster's Go
# builds into a cache outside the checkout).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt 2>/dev/null | sha256sum | cut -c1-12)
export MODELSHIP_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/modelship
PYTEST_ARGS ?=

.PHONY: help venv apt-tools test test-unit lint crds crds-check chart-schema chart-lint bench bench-serving \
        images cluster-build demo e2e-kind clean constraints

help:
	@echo "make demo    set up, start the local cluster and operator, show the loop"
	@echo "make test    set up and run the whole test suite"
	@echo "make lint    ruff, mypy (strict), import contracts"
	@echo "make crds    regenerate crds/ from the pydantic API models"
	@echo "make bench   benchmarks (training, serving, drift, cluster)"
	@echo "make images  build the trainer, serving and operator images"

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	@rm -f $(VENV)/.installed-*; touch $@

venv: $(STAMP)

# constraints.txt pins every package to one tested set (make venv and the images install it);
# this resolves pyproject.toml's ranges afresh in a scratch venv and pins the result.
constraints:
	rm -rf .venv-constraints && $(PYTHON) -m venv .venv-constraints
	.venv-constraints/bin/python -m pip install -q --upgrade pip
	.venv-constraints/bin/python -m pip install -q -e '.[dev]'
	{ grep '^#' constraints.txt; .venv-constraints/bin/python -m pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt && rm -rf .venv-constraints

# Debian tools the tests use: command:package (load generators: wrk, hey, h2load for gRPC; promtool,
# Alertmanager). A policy-rc.d keeps package scripts from starting services
# (prometheus, prometheus-alertmanager) here; the tests start their own.
APT_TOOLS := wrk:wrk hey:hey h2load:nghttp2-client promtool:prometheus prometheus-alertmanager:prometheus-alertmanager
apt-tools:
	@missing=""; for t in $(APT_TOOLS); do command -v $${t%%:*} >/dev/null || missing="$$missing $${t#*:}"; done; \
	if [ -n "$$missing" ]; then echo "Installing$$missing from Debian"; \
	  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  status=$$?; rm -f /usr/sbin/policy-rc.d; exit $$status; fi

test: venv apt-tools cluster-build
	MODELSHIP_CLUSTER_TESTS=$${MODELSHIP_CLUSTER_TESTS:-all} $(PY) -m pytest --durations=25 $(PYTEST_ARGS)

test-unit: venv
	$(PY) -m pytest -m "not cluster" $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check operator serving_image tests benches
	$(VENV)/bin/mypy operator/src/modelship serving_image/src/modelship_runtime benches
	$(VENV)/bin/lint-imports

# One generator, two copies: crds/ for kubectl users, the chart's files/crds/
# for templates/crds.yaml (tests fail when either drifts). The chart's values
# schema and its docs table come from one pydantic model (modelship.chart.values).
crds: venv
	$(PY) -m modelship.api.crdgen crds
	$(PY) -m modelship.api.crdgen charts/modelship/files/crds
	$(PY) -m modelship.api.reference docs/api.md
	$(PY) -m modelship.chart.values charts/modelship/values.schema.json docs/helm.md

chart-schema: venv
	$(PY) -m modelship.chart.values charts/modelship/values.schema.json docs/helm.md

# helm lint --strict and helm template for every charts/modelship/ci/*.yaml,
# each render validated by kubernetes-validate --strict at the pinned
# Kubernetes version; helm is the one `make cluster-build` built (no download).
chart-lint: venv
	$(PY) -m modelship.chart.lint charts/modelship

# cluster-build's set plus Argo Rollouts' controller (benches/rollouts compares with it).
bench: venv apt-tools
	$(PY) -m modelship.cli local build --for bench
	$(PY) -m pytest benches -q -s $(PYTEST_ARGS)

# modelship-serve against MLServer and KServe (peer venvs cached under $(MODELSHIP_CACHE)/bench-venvs).
bench-serving: venv apt-tools
	$(PY) -m pytest benches/serving -q -s $(PYTEST_ARGS)

# The local cluster (issue 11): upstream Kubernetes built from the Go module
# proxy into $(MODELSHIP_CACHE), reused on later runs.
cluster-build: venv
	$(PY) -m modelship.cli local build

# The project's images, built with buildah (no Docker) and loaded into the
# running local cluster; tags are the project version plus a content hash.
images: venv
	$(PY) -m modelship.cli images build

# The same end-to-end suite on a 3-node kind cluster (not part of `make test`): Docker from
# Debian, kind from its Go module, its base and node images built here (no registry), the
# cluster deleted, dockerd stopped and the host checked clean at the end. As root; it holds the
# local cluster's machine lock throughout (the two never run at once).
e2e-kind: venv apt-tools cluster-build
	$(PY) -m modelship.cli kind e2e -- $(PYTEST_ARGS)

demo: venv
	$(PY) -m modelship.cli demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

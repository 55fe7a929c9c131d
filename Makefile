# One command each. Every target bootstraps the virtual environments it needs (pinned in requirements/).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SYNTH_PY := .venv-synth/bin/python
SAM := .venv-sam/bin/sam
BENCH_SEED ?= 42
export BENCH_SEED
export PYTHONPATH := $(CURDIR)/layers/shared:$(CURDIR)
export TF_CPP_MIN_LOG_LEVEL := 2
export SAGEMAKER_TELEMETRY_OPT_OUT := true
export SAM_CLI_TELEMETRY := 0

.PHONY: bootstrap demo demo-drift test test-fast lint format typecheck synth build validate audit bench bench-model bench-load mutation clean

# The project itself is installed editable, for the `localcloud` command (pyproject.toml [project.scripts]).
$(VENV)/.stamp: requirements/dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements/dev.txt
	$(VENV)/bin/pip install -q --no-deps --no-build-isolation -e .
	touch $@

.venv-synth/.stamp: requirements/synth.txt
	$(PYTHON) -m venv .venv-synth
	.venv-synth/bin/pip install -q -r requirements/synth.txt
	touch $@

.venv-sam/.stamp: requirements/sam.txt
	$(PYTHON) -m venv .venv-sam
	.venv-sam/bin/pip install -q -r requirements/sam.txt
	touch $@

.venv-audit/.stamp: requirements/audit.txt
	$(PYTHON) -m venv .venv-audit
	.venv-audit/bin/pip install -q -r requirements/audit.txt
	touch $@

bootstrap: $(VENV)/.stamp .venv-synth/.stamp .venv-sam/.stamp .venv-audit/.stamp

synth: .venv-synth/.stamp
	$(SYNTH_PY) -m orchestrator.pipeline_builder --output layers/shared/orchestrator/pipeline_definition.json
	$(SYNTH_PY) -m orchestrator.image_registry --template template.yaml

# Two pytest-xdist workers (CI has 2 cores); --dist loadfile keeps each file's tests on one worker, so a
# module's fixtures (the end-to-end runs on the local cloud) are set up once.
test: bootstrap
	$(PY) -m pytest -q -n 2 --dist loadfile --durations=15 tests

test-fast: $(VENV)/.stamp
	$(PY) -m pytest -q -m "not slow" tests

lint: $(VENV)/.stamp
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/cfn-lint template.yaml

format: $(VENV)/.stamp
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

typecheck: $(VENV)/.stamp
	$(VENV)/bin/mypy

# checkov over template.yaml (every suppression carries its reason in the resource's Metadata), then
# pip-audit over every pinned requirements file; --strict fails when a package could not be checked (it needs
# PyPI's JSON API or OSV on the network: this workplace reaches neither, so here it fails, saying so).
audit: .venv-audit/.stamp
	.venv-audit/bin/checkov -f template.yaml --framework cloudformation --compact --quiet --skip-download
	for requirements in requirements/layer.txt requirements/dev.txt requirements/synth.txt requirements/sam.txt \
	    requirements/audit.txt; do \
	  .venv-audit/bin/pip-audit --strict --no-deps --disable-pip --progress-spinner off -r $$requirements || exit 1; \
	done

validate: .venv-sam/.stamp $(VENV)/.stamp
	$(VENV)/bin/cfn-lint template.yaml
	$(SAM) validate --lint --region us-east-1

build: .venv-sam/.stamp layers/shared/orchestrator/pipeline_definition.json
	$(SAM) build --region us-east-1

demo: $(VENV)/.stamp
	$(PY) -m localcloud demo

# The monitoring loop: ordinary then shifted requests, the drift report, the alarm, the retraining run
demo-drift: $(VENV)/.stamp
	$(PY) -m localcloud demo-drift

bench: $(VENV)/.stamp
	$(PY) benchmarks/bench.py

# Mutation testing of the layer's decision modules (MODULES="naming intake" for some): benchmarks/results/mutation.json
mutation: $(VENV)/.stamp
	$(PY) benchmarks/mutation.py $(MODULES)

# A burst of 1,000 mixed events on the faulty local cloud: benchmarks/results/load.json
bench-load: $(VENV)/.stamp
	$(PY) benchmarks/load.py --seed $(BENCH_SEED)

bench-model: $(VENV)/.stamp
	$(PY) benchmarks/model_quality.py --seed $(BENCH_SEED)

clean:
	rm -rf .aws-sam .localcloud .pytest_cache .mypy_cache .ruff_cache .mutation

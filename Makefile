# Seg-Zero++ — every target creates or reuses .venv/ in the repo root and is idempotent.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.setup-stamp
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export WANDB_MODE ?= offline
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test bench lint clean

$(STAMP): pyproject.toml setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.14.1 torchvision==0.29.1
	SAM2_BUILD_CUDA=0 $(PIP) install -q --no-build-isolation sam2==1.1.0
	$(PIP) install -q -e ".[cpu]"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(PY) -m segzero_plus.demo --out outputs/demo

# pytest exits 5 when it collects nothing: an empty suite is a failure, not a pass.
test: setup
	@$(PY) -m pytest -q -p no:cacheprovider --durations=15 tests; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

bench: setup
	$(PY) -m benchmarks.run --out docs/benchmarks.md --json docs/benchmarks.json

lint: setup
	$(VENV)/bin/ruff check segzero_plus tests benchmarks prepare_dataset evaluation_scripts
	$(VENV)/bin/ruff format --check segzero_plus tests benchmarks prepare_dataset evaluation_scripts

clean:
	rm -rf outputs .cache

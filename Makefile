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

.PHONY: setup demo test test-wheel bench lint lock clean learn learn-ablation

LOCK := requirements/cpu-lock.txt

# torch first, then sam2 built against it without build isolation (no CUDA extension), then the rest,
# every version constrained by the lock so that CI and a fresh machine get what the tests passed with.
$(STAMP): pyproject.toml setup.py $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade "pip>=24"
	$(PIP) install -q -c $(LOCK) torch torchvision
	SAM2_BUILD_CUDA=0 $(PIP) install -q --no-build-isolation -c $(LOCK) sam2
	$(PIP) install -q -c $(LOCK) -e ".[cpu]"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(PY) -m segzero_plus.demo --out outputs/demo

# GRPO on the toy look-alike world with the TRL engine (CPU): the cold-started toy policy, ~10 min on
# 2 cores; outputs/learn/{report.md,curves.png,metrics.json}. learn-ablation: baseline / geometry /
# SAM counterfactual rewards x 3 seeds, shortened runs (~30 min); outputs/learn_ablation/report.md.
learn: setup
	$(PY) -m segzero_plus.train.trl_learn learn --out outputs/learn

learn-ablation: setup
	$(PY) -m segzero_plus.train.trl_learn ablation --out outputs/learn_ablation

# pytest exits 5 when it collects nothing: an empty suite is a failure, not a pass.
test: setup
	@$(PY) -m pytest -q -p no:cacheprovider --durations=15 tests; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

# The wheel outside the checkout (deselected from `make test`: a build, an install, three CLI starts).
test-wheel: setup
	$(PY) -m pytest -q -p no:cacheprovider -m wheel tests/test_wheel_on_cpu.py

bench: setup
	$(PY) -m benchmarks.run --out docs/benchmarks.md --json docs/benchmarks.json

lint: setup
	$(VENV)/bin/ruff check segzero_plus tests benchmarks prepare_dataset evaluation_scripts
	$(VENV)/bin/ruff format --check segzero_plus tests benchmarks prepare_dataset evaluation_scripts

# Refresh the lock from the current venv (after changing dependencies in pyproject.toml).
lock: setup
	{ echo "# CPU profile lock: the exact versions \`make setup\` resolved and the test suite passed with."; \
	  echo "# Regenerate with: make lock"; \
	  $(PIP) freeze | grep -v "^-e" | grep -vi "^segzero"; } > $(LOCK)

clean:
	rm -rf outputs .cache

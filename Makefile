# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CORES  ?= 2
PIP_VERSION := 26.3
# The workflow's rules call `sop-cosmo` and `papermill`: take them from the venv.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: demo test test-unit test-workflow lint bench clean venv ci lock

venv: $(STAMP)

# constraints.txt is the lock: every dependency pinned (the CPU torch too); see README for CUDA.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "pip==$(PIP_VERSION)"
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# Re-resolve the lock: a fresh venv with the newest versions pyproject.toml allows (torch kept
# at the CPU build), frozen into constraints.txt. Run `make test` on it before committing.
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install -q "pip==$(PIP_VERSION)" torch==2.13.0
	.venv-lock/bin/python -m pip install -q -e '.[dev]'
	{ sed -n '/^#/p' constraints.txt; .venv-lock/bin/python -m pip freeze --exclude-editable \
	  | sed 's/^torch==.*/torch==2.13.0/'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt && rm -rf .venv-lock

# The whole workflow on the default config (config/config.yaml), then the HTML report.
# Reruns redo only what is missing or out of date.
demo: $(STAMP)
	@start=$$(date +%s); \
	$(BIN)/snakemake --cores $(CORES) && \
	$(BIN)/snakemake --report results/report/report.html && \
	echo "demo: workflow and report took $$(( $$(date +%s) - start )) s on $(CORES) cores"
	@echo "Results:  results/<stage>/ (analyze/summary.json, analyze/figures/, baselines/, controls/, evaluate/, theory/)"
	@echo "Notebook: results/report/void_cluster_findings.ipynb (executed)"
	@echo "Report:   results/report/report.html (all figures and metrics)"
	@echo "Logs:     logs/<stage>/"

# Unit tests first, then the workflow in CI order: snakemake --lint, snakefmt, dry runs and
# config validation, the tiny .test/ run with its notebook and report, then the SLURM profile
# on a local one-node cluster (root only; SOP_SKIP_SLURM=1 skips it).
test: test-unit test-workflow

test-unit: $(STAMP)
	$(BIN)/python -m pytest -q --ignore=tests/workflow --ignore=tests/slurm

test-workflow: $(STAMP)
	$(BIN)/python -m pytest -q --durations=5 tests/workflow tests/slurm

ci:
	.ci/run

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python bench/sop_overhead.py

clean:
	rm -rf results logs .pytest_cache .ruff_cache

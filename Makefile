# Two commands on a fresh machine: `make demo` runs the whole loop, `make test` runs the tests.
# Each builds .venv from nothing (Python >= 3.11, pip and make are all they need).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench venv clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/mlpulse demo $(DEMO_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/sink.py
	$(BIN)/python bench/nab.py run --data ../shared/nab/data --out bench/out/nab
	$(BIN)/python bench/nab.py score --data ../shared/nab/data --labels ../shared/nab/labels/combined_windows.json --results bench/out/nab
	$(BIN)/python bench/remediation_latency.py
	$(BIN)/python bench/backends.py
	$(BIN)/python bench/sharding.py

clean:
	rm -rf $(VENV) build *.egg-info

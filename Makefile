# parity: `make demo` and `make test` work on a fresh machine with python3 (>= 3.10).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev

.PHONY: demo test lint typecheck unit bench bench-small clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)  ## end-to-end example on the embedded defaults
	$(BIN)/python examples/retail/demo.py --workspace demo-workspace

test: $(STAMP) lint typecheck unit  ## the whole suite: lint, types, tests

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples

typecheck: $(STAMP)
	$(BIN)/mypy src

unit: $(STAMP)
	$(BIN)/pytest -q

bench: $(STAMP)  ## full benchmarks (tens of minutes); figures go to BENCHMARKS.md
	$(BIN)/python benchmarks/timemachine.py

bench-small: $(STAMP)
	$(BIN)/python benchmarks/timemachine.py --scale small

clean:
	rm -rf $(VENV) demo-workspace bench-data .pytest_cache .mypy_cache .ruff_cache

# Two entry points for people: `make demo` and `make test`. Both build .venv from nothing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check bench tools clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# OS tools some tests and the demo's imaging use (casacore-tools, wsclean, aoflagger,
# systemd-analyze, iproute2); best effort: without them the demo skips imaging and those tests skip.
tools:
	@bash scripts/install-tools.sh

demo: $(STAMP) tools
	$(BIN)/python -m services.demo

# The shape checks CI enforces: lint (settings in pyproject.toml), types, then the suite
# (tests/test_layers.py holds the import-layer rules).
check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy ringbuf services

test: $(STAMP) tools check
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache

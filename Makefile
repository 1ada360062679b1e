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
	mkdir -p build/bench && rm -f build/bench/*.log
	for b in benchmarks/*.py; do \
	  case $$b in */summary.py) continue;; esac; \
	  log=build/bench/$$(basename $$b .py).log; \
	  { $(BIN)/python $$b 2>&1 || echo "FAILED: $$b"; } | tee $$log; \
	  ! grep -q "^FAILED: " $$log || exit 1; \
	done
	$(BIN)/python benchmarks/summary.py build/bench/*.log

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache

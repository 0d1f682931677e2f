# nfvkit: `make demo` sets up and runs the main job; `make test` sets up and runs the tests.
# Both create .venv with pinned dependencies on first use (Python 3.11).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
OUT    := out

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.run-deps: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --disable-pip-version-check -q -e .
	touch $@

$(VENV)/.test-deps: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --disable-pip-version-check -q -e '.[test]'
	touch $@ $(VENV)/.run-deps

demo: $(VENV)/.run-deps
	@mkdir -p $(OUT)
	$(BIN)/nfv gen $(OUT)/trace.pcap --packets 300000 --flows 20000 --size imix --malformed 0.001 --vlan 0.05
	$(BIN)/nfv run examples/edge-firewall/graph.yaml --in $(OUT)/trace.pcap --out $(OUT)/forwarded.pcap --batch 1024

lint: $(VENV)/.test-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

bench: $(VENV)/.run-deps
	$(BIN)/python benchmarks/bench_core.py

clean:
	rm -rf $(OUT) .mypy_cache .ruff_cache .pytest_cache

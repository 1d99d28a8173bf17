# llmdeck — the two commands of the README:
#   make demo   the TUI with the real SmolLM2 demo model running (builds llama-server once, cached)
#   make test   the whole test suite against a real llama-server and model, in 3 pytest-xdist
#               workers (whole files per worker: module fixtures start once); most of a test's
#               time is waiting on a server, subprocess or terminal, so 3 fit 2 cores
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test setup bench clean-demo

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)
	$(BIN)/llmdeck setup

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

test: $(STAMP)
	$(BIN)/llmdeck setup
	sh scripts/ensure-chromium.sh
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 3 --dist loadfile

bench: $(STAMP)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[test,bench]"
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# stops the demo's servers, then removes .demo; quiet when there is nothing to clean. When the
# stop fails, .demo (its pid files) is kept so the servers are not left running unmanaged.
clean-demo:
	@if [ -f .demo/models.json ]; then $(BIN)/llmdeck --registry .demo/models.json stop --all; fi
	@rm -rf .demo

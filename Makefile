# Two entry points on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench lint clean yamcs

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,mcs,lsp,scale]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m missions.corot.demo

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist worksteal

# A local Yamcs with CoRoT's XTCE: web interface on http://127.0.0.1:8090, TM over UDP 10015
# (`ccl sim SCENARIO --yamcs 127.0.0.1:10015` in another shell); Ctrl-C stops it.
yamcs: $(STAMP)
	$(BIN)/ccl yamcs serve --mission corot missions/corot/configs/exo_e1*.ccl

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

lint: $(STAMP)
	$(BIN)/ruff check ccl onboard ground missions cli tests benchmarks
	$(BIN)/mypy ccl onboard ground missions cli

clean:
	rm -rf $(VENV) build *.egg-info

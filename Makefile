# make demo   set up a virtual environment from nothing, then train the built-in demo
# make test   set up, then run the test suite
# make bench  set up, then run the benchmarks (slow; prints tables)
VENV   ?= .venv
PYTHON ?= python3
PY      = $(VENV)/bin/python

.PHONY: setup demo test bench clean

setup: $(VENV)/.installed

# torch first, pinned: this machine's CPU build; the package then asks only for a range it satisfies.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	touch $@

demo: setup
	$(VENV)/bin/rnnkit demo

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/cells.py

clean:
	rm -rf $(VENV) build *.egg-info

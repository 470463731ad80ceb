# Two commands on a fresh machine (see README.md):
#   make book   installs everything into .venv and builds the HTML book into _build/html
#   make test   installs everything (and Debian's chromium) and runs every check CI runs
# Others: make lab (open the chapters in JupyterLab), make exercises (student notebooks without
# solutions in _build/exercises), make bench (measure the book's claims, ~20 min),
# make clean-notebooks, make clean.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
JB_BUILD := $(BIN)/jupyter-book build . -W -n --keep-going

.PHONY: book test lab bench exercises lint unit nbval site browser install clean clean-notebooks

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

book: install
	$(JB_BUILD)
	@echo "The book is at $(CURDIR)/_build/html/index.html (open it in a browser; it works offline)."

# Debian's Chromium for the headless-browser checks (never `playwright install`).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -q && $$SUDO apt-get install -y -q chromium; \
	fi

lint: install
	$(BIN)/ruff check sbgm_edu tests scripts benchmarks book
	@# chapters: no code line over 88 characters (book/ruff.toml), formatted as ruff formats them
	$(BIN)/ruff format --check book/*.ipynb

unit: install
	$(BIN)/pytest tests --ignore=tests/site -q

nbval: install
	$(BIN)/pytest book --nbval-lax -q

site: install browser
	$(BIN)/pytest tests/site -q

# Every check, in the order that fails fastest.
test: install browser lint unit nbval
	$(JB_BUILD)
	$(MAKE) site

# Full benchmark run: writes benchmarks/results.json and results.md (the appendix shows them).
bench: install
	$(BIN)/python -m benchmarks --update-committed

# One notebook per chapter with every solution replaced by a stub, to hand out.
exercises: install
	$(BIN)/python scripts/make_exercises.py

lab: install
	$(BIN)/jupyter lab book

clean-notebooks: install
	$(BIN)/jupyter nbconvert --clear-output --inplace book/*.ipynb

clean:
	rm -rf _build

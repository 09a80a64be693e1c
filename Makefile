# Two commands for a fresh machine (Python 3.11 and make): `make serve` and `make test`.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# `make serve` runs with the embedded defaults for a local run: dev mode, the Firebase Auth emulator
# convention (unsigned tokens). No emulator needs to run: without one there is nobody to look users up,
# so revocation is not checked. Only for `serve`: the tests set up their own (tests/conftest.py).
serve: export PHOTODUEL_ENV ?= dev
serve: export FIREBASE_AUTH_EMULATOR_HOST ?= 127.0.0.1:9099
serve: export PHOTODUEL_AUTH_CHECK_REVOKED ?= false

.PHONY: install serve test lint schema bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "PhotoDuel needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[embedded,dev]'
	@touch $(STAMP)

serve: install
	$(BIN)/photoduel serve

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

schema: install
	$(BIN)/photoduel export-schema --output schema.graphql

clean:
	rm -rf $(VENV) data .pytest_cache

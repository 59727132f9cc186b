# The single entry points. Every target bootstraps .venv on a fresh machine (Debian, Python 3.11).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOME_DIR ?= .medledger-demo
PORT   ?= 8000

.PHONY: run test test-slow bench lint lock clean

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/medledger demo --home $(HOME_DIR) --port $(PORT)

test: $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider

test-slow: $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider -m slow

bench: $(STAMP)
	$(BIN)/python -m benchmarks

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

# Regenerate the lock file after changing dependencies in pyproject.toml.
lock: $(STAMP)
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra bench --python-version 3.11 --generate-hashes -o requirements.lock

clean:
	rm -rf $(VENV) $(HOME_DIR) .mypy_cache .ruff_cache .hypothesis

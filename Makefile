# The single entry points. Every target bootstraps .venv on a fresh machine (Debian, Python 3.11).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOME_DIR ?= .medledger-demo
PORT   ?= 8000

ETCD   := /usr/bin/etcd

.PHONY: run test test-slow bench lint lock clean etcd chromium portal-vendor

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

# The consortium's ordering cluster (issue 7): Debian's etcd-server, installed when missing.
$(ETCD):
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server)

etcd: $(ETCD)

# The portal's browser tests (issue 8): Debian's Chromium, driven by the Python playwright package
# with executable_path, never a browser download.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

chromium: $(CHROMIUM)

# The portal's vendored JavaScript (scrypt from @noble/hashes, ADR 0019), rebuilt from the npm
# lock file; the output is committed, so run and test need no npm.
portal-vendor:
	cd portal-vendor && npm ci --ignore-scripts --no-audit --no-fund
	node portal-vendor/build.mjs

run: $(STAMP)
	$(BIN)/medledger demo --home $(HOME_DIR) --port $(PORT)

test: $(STAMP) $(ETCD) $(CHROMIUM)
	$(BIN)/python -m pytest -p no:cacheprovider

test-slow: $(STAMP) $(ETCD) $(CHROMIUM)
	$(BIN)/python -m pytest -p no:cacheprovider -m slow

bench: $(STAMP) $(ETCD)
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

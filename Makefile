# The single entry points. Every target bootstraps .venv on a fresh machine (Debian, Python 3.11).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOME_DIR ?= .medledger-demo
PORT   ?= 8000

ETCD   := /usr/bin/etcd

.PHONY: run test test-slow bench lint lint-js lock clean etcd chromium portal-vendor

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

# The portal's JavaScript lint (ADR 0023): ESLint from tools/js-lint's lock file, run on Debian's
# node and npm (installed when missing); `npm ci` again only when the lock file changes.
NPM           := /usr/bin/npm
JS_LINT       := tools/js-lint
JS_LINT_STAMP := $(JS_LINT)/node_modules/.installed
PORTAL_JS     := src/medledger/entrypoints/portal/static/js
$(NPM):
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm)

$(JS_LINT_STAMP): $(JS_LINT)/package-lock.json $(JS_LINT)/package.json | $(NPM)
	cd $(JS_LINT) && npm ci --ignore-scripts --no-audit --no-fund
	@touch $@

lint-js: $(JS_LINT_STAMP)
	$(JS_LINT)/node_modules/.bin/eslint --config $(JS_LINT)/eslint.config.js --max-warnings 0 $(PORTAL_JS)

run: $(STAMP)
	$(BIN)/medledger demo --home $(HOME_DIR) --port $(PORT)

test: $(STAMP) $(ETCD) $(CHROMIUM)
	$(BIN)/python -m pytest -p no:cacheprovider

test-slow: $(STAMP) $(ETCD) $(CHROMIUM)
	$(BIN)/python -m pytest -p no:cacheprovider -m slow

bench: $(STAMP) $(ETCD)
	$(BIN)/python -m benchmarks

lint: $(STAMP) lint-js
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

# Regenerate the lock file after changing dependencies in pyproject.toml.
lock: $(STAMP)
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra bench --python-version 3.11 --generate-hashes -o requirements.lock

clean:
	rm -rf $(VENV) $(HOME_DIR) $(JS_LINT)/node_modules .mypy_cache .ruff_cache .hypothesis

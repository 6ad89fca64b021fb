# The Makefile is the manual: every routine action is a target. `make help` lists them.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PORT   ?= 8000
SPEC   := spec/openapi.json spec/admin.json

.DEFAULT_GOAL := help
.PHONY: help install browser postgres run serve mock contract bench bench-tools bench-server bench-mock test unit lint fmt spec fuzz mutate db smoke container clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install clientkeys with its test tools

browser: ## Install Debian's chromium for the docs page test (Playwright drives it; it downloads none)
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)

# The tests start PostgreSQL servers of their own from its binaries (initdb in a temporary folder,
# a free loopback port, as the postgres user); Debian's package also starts a cluster of its own
# where an init system runs, which nothing here uses.
postgres: ## Install Debian's postgresql for the tests (no server needed to run clientkeys)
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || \
	    (apt-get update && apt-get install -y postgresql)

run: install ## Set up, create demo data (printed) and serve on http://127.0.0.1:$(PORT)
	$(BIN)/clientkeys serve --demo --port $(PORT)

serve: install ## Serve without creating demo data
	$(BIN)/clientkeys serve --port $(PORT)

mock: install ## Serve the mock of the spec on http://127.0.0.1:4010 (refuses invalid examples)
	$(BIN)/clientkeys mock --strict

# The server gets a free port and a random admin token; only a server answering that token on
# /__admin/ is ours, so the check never runs against something else that listens there.
ANSWERS = import sys, urllib.request as u; u.urlopen(u.Request(sys.argv[1], \
	headers={"Authorization": "Bearer " + sys.argv[2]}), timeout=1)
contract: install ## Serve tests/data/ci.yaml on a free port, check that server, write reports/junit.xml
	rm -f reports/contract.db reports/contract.db-wal reports/contract.db-shm && mkdir -p reports
	@port=$$($(BIN)/python -c 'from clientkeys.testing.plugin import free_port; print(free_port())'); \
	mark=$$($(BIN)/python -c 'import secrets; print(secrets.token_hex(16))'); \
	$(BIN)/clientkeys serve --port $$port --workers 1 --database reports/contract.db \
	    --fixtures tests/data/ci.yaml --admin-token $$mark --log-level warning \
	    > reports/contract-server.log 2>&1 & pid=$$!; \
	trap "kill $$pid 2>/dev/null" EXIT; \
	tries=0; until $(BIN)/python -c '$(ANSWERS)' \
	    http://127.0.0.1:$$port/__admin/requests?limit=1 $$mark 2>/dev/null; do \
	  if ! kill -0 $$pid 2>/dev/null || [ $$tries -ge 300 ]; then \
	    echo "make contract: the server did not start; its log:" >&2; \
	    cat reports/contract-server.log >&2; exit 1; fi; \
	  tries=$$((tries + 1)); sleep 0.1; \
	done; \
	$(BIN)/clientkeys check http://127.0.0.1:$$port --token sntrys_ci_admin_token --org acme \
	    --project web --read-only-token sntrys_ci_read_token --junit-xml reports/junit.xml

bench: bench-server postgres ## The server vs Prism, plain Connexion and a fair ceiling, SQLite vs PostgreSQL (1 and 3 nodes), the proxy's cost, the mock vs Prism; writes bench/*results.md
	$(BIN)/python bench/postgres.py
	$(BIN)/python bench/proxy.py
	$(MAKE) bench-mock

PRISM_VERSION ?= 5.16.0
bench-tools: install
	command -v wrk >/dev/null || (apt-get update && apt-get install -y wrk)
	command -v npm >/dev/null || (apt-get update && apt-get install -y nodejs npm)
	test -x bench/prism/node_modules/.bin/prism || (mkdir -p bench/prism && cd bench/prism && \
	    npm install --no-audit --no-fund --loglevel=error @stoplight/prism-cli@$(PRISM_VERSION))
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'

bench-server: bench-tools ## clientkeys serve vs Prism, plain Connexion and the fair ceiling, interleaved; writes bench/results.md
	$(BIN)/python bench/run.py

bench-mock: bench-tools ## clientkeys mock vs Stoplight Prism (npm) on 3 specs; writes bench/mock-results.md
	$(BIN)/python bench/mock.py

db: install ## Create the database or apply pending migrations
	$(BIN)/clientkeys init-db

test: install browser postgres lint spec ## Set up and run everything: lint, spec check, the whole suite
	command -v curl >/dev/null || (apt-get update && apt-get install -y curl)
	$(BIN)/pytest -n 2

unit: install browser postgres ## Run the test suite only
	$(BIN)/pytest -n 2

lint: install ## ruff format --check, ruff check, mypy, lint-imports (the README's layers)
	$(BIN)/ruff format --check src tests bench .ci/mutate.py
	$(BIN)/ruff check src tests bench .ci/mutate.py
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

fmt: install ## Format the code
	$(BIN)/ruff format src tests bench .ci/mutate.py
	$(BIN)/ruff check --fix src tests bench .ci/mutate.py

spec: install ## Validate the OpenAPI documents
	$(BIN)/openapi-spec-validator $(SPEC)

fuzz: install ## A longer Schemathesis run (CONTRACT_EXAMPLES=500)
	CONTRACT_EXAMPLES=500 $(BIN)/pytest -m fuzz -n 2

MODULES ?=
mutate: install ## Mutation testing (mutmut) per module of .ci/mutation.toml, MODULES=... for some
	$(BIN)/python -m pip install --quiet -e '.[test,mutate]'
	nice -n 10 $(BIN)/python .ci/mutate.py $(MODULES)

smoke: ## Install clientkeys without extras in a scratch venv: it serves; check, proxy and mock name their extras
	PYTHON=$(PYTHON) .ci/smoke

container: ## Replay the Containerfile's steps in a scratch venv, serving as an unprivileged user
	.ci/container

clean: ## Remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

# tracos-sync — everything a new machine needs, from python3 and make alone.
PYTHON ?= python3
VENV := .venv
TOOLS := .tools
POETRY_VERSION := 2.5.1
SECANTUSDB_VERSION := 0.7.0b3
# Poetry through a thin launcher that falls back to the index's simple API when the per-release
# JSON API is missing (see tools/poetry_simple_api.py).
POETRY := $(TOOLS)/poetry/bin/python tools/poetry_simple_api.py
# The local server (GPL-2.0) lives in its own environment and runs as a separate process.
SECANTUSD := $(TOOLS)/secantusdb/bin/secantusd-py
export SECANTUSD_BIN ?= $(abspath $(SECANTUSD))
# SAP's CAP server (OData v4) for the HTTP connector's tests: its model lives in tools/cap-erp,
# its packages and its own Node 22 under .tools/cap (shared by every checkout, like the rest of
# .tools, and out of the way of the repository's files).
CAP := $(TOOLS)/cap
# Where `make cap-erp` serves (CAP's own default port).
CAP_PORT ?= 4004
# Debian's OpenSSH server for the SFTP transport's tests: the packages unpacked (dpkg -x) into
# .tools/ssh, nothing installed system-wide and nothing started; the tests run it themselves
# (tests/support/sshd.py). libwrap0 is the one library sshd links that a slim image lacks; its
# sftp subsystem is the server's own internal-sftp (see tests/support/sshd.py for why).
SSH_PACKAGES := openssh-server libwrap0
SSHD := $(TOOLS)/ssh/usr/sbin/sshd

.PHONY: help install tools tools-cap tools-ssh run seed test faults chaos lint format clean clean-data lock bench bench-memory bench-latency bench-integrations bench-http bench-sftp bench-replicas demo-http cap-erp docs docs-serve docs-tables

help:
	@echo "make run           one full sync; on the embedded local server (no MONGO_URI in the environment"
	@echo "                   or .env) with sample data on first use; with MONGO_URI, the sync alone"
	@echo "make seed          write sample data (embedded server unless MONGO_URI is set, here or in .env);"
	@echo "                   FORCE=1 writes it even where work orders already are (seed --force)"
	@echo "make demo-http     the HTTP connector: a fake ERP API, an embedded server, one sync each way"
	@echo "make cap-erp       SAP's CAP OData server (S/4HANA's maintenance order, sample orders) on"
	@echo "                   127.0.0.1:$(CAP_PORT) (CAP_PORT=...), in the foreground, fresh each start; Ctrl-C stops it"
	@echo "make test          the documentation build, then the test suite (unit, property, end to end, faults, docs)"
	@echo "make faults        the fault tests only"
	@echo "make chaos         the randomized fault campaign, long profile (CHAOS_SECONDS=600)"
	@echo "make lint          ruff + mypy --strict"
	@echo "make docs          the documentation site into site/ (strict: broken links, anchors, orphan pages fail)"
	@echo "make docs-serve    the documentation site on http://127.0.0.1:8000, rebuilt on change"
	@echo "make docs-tables   rewrite the reference tables the pages keep (settings, keys, metrics) from the code"
	@echo "make format        apply ruff's fixes and formatting"
	@echo "make bench         throughput against the raw limit and a naive baseline (N=5000)"
	@echo "make bench-memory  peak memory of a large run (N=100000)"
	@echo "make bench-integrations  ten small integrations in one run against one holding all their work"
	@echo "make bench-http    the api connector against SAP's CAP server, 5,000 orders read and written, against a bare"
	@echo "                   httpx loop sending the same requests (fails over 1.3x)"
	@echo "make bench-sftp    2,000 files in and out over SFTP (a local sshd) against local folders (N=2000)"
	@echo "make bench-replicas  300 integrations on 1 watch replica and on 3 (leases): work per replica, latency"
	@echo "                   of the slowest integration, take-over after a kill (INTEGRATIONS=300 RATE=100 DURATION=60)"
	@echo "make bench-latency file -> TracOS and TracOS -> file latency while watch runs (RATES=50,400 DURATION=30)"
	@echo "make install       the project's environment (.venv, from poetry.lock)"
	@echo "make tools         the embedded server's own environment (.tools/secantusdb)"
	@echo "make tools-cap     SAP's CAP OData server and its Node 22, for the tests (.tools/cap)"
	@echo "make tools-ssh     Debian's OpenSSH server, unpacked for the SFTP tests (.tools/ssh)"
	@echo "make lock          update poetry.lock from pyproject.toml"
	@echo "make clean         remove environments and caches (keeps data/ and .data/)"
	@echo "make clean-data    remove data/ (client files, archives, exports) and .data/ (embedded database)"

$(TOOLS)/poetry/.installed:
	$(PYTHON) -m venv $(TOOLS)/poetry
	$(TOOLS)/poetry/bin/pip install --quiet --disable-pip-version-check poetry==$(POETRY_VERSION)
	touch $@

$(SECANTUSD):
	$(PYTHON) -m venv $(TOOLS)/secantusdb
	$(TOOLS)/secantusdb/bin/pip install --quiet --disable-pip-version-check secantusdb==$(SECANTUSDB_VERSION)

$(VENV)/.installed: pyproject.toml poetry.lock | $(TOOLS)/poetry/.installed
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	VIRTUAL_ENV=$(abspath $(VENV)) $(POETRY) install --with dev --no-interaction --compile
	$(VENV)/bin/python -m compileall -q src
	touch $@

install: $(VENV)/.installed

tools: $(SECANTUSD)

# npm ci from the committed lock (the same bytes on every machine), into a new folder that takes
# the place of the old one only when complete. Compared by content, not by date: a fresh clone
# or another worktree with the same lock installs nothing, and a changed lock reinstalls.
tools-cap:
	@cmp -s tools/cap-erp/package-lock.json $(CAP)/package-lock.json || { \
		new=$(CAP).new.$$$$; rm -rf $$new && mkdir -p $$new \
		&& cp tools/cap-erp/package.json tools/cap-erp/package-lock.json $$new/ \
		&& (cd $$new && npm ci --no-audit --no-fund --loglevel=error) \
		&& rm -rf $(CAP) && mv -T $$new $(CAP) || { rm -rf $$new; exit 1; }; }

# apt-get download needs no root, but the package lists: a fresh image has none, and then one
# `apt-get update` (as root) fetches them. Unpacked into a new folder that takes the place of the
# old one only when complete, and only when sshd finds every library it links (ldd): the rest
# (libpam, libaudit, libsystemd, libselinux, libgssapi-krb5, libcrypto) is in Debian 12's base.
tools-ssh: $(SSHD)

$(SSHD):
	@new=$(TOOLS)/ssh.new.$$$$; rm -rf $$new && mkdir -p $$new/debs \
	&& (cd $$new/debs && { apt-get download $(SSH_PACKAGES) 2>/dev/null \
		|| { apt-get update -qq && apt-get download $(SSH_PACKAGES); }; }) \
	&& for deb in $$new/debs/*.deb; do dpkg -x $$deb $$new || exit 1; done \
	&& missing=$$(LD_LIBRARY_PATH=$$(echo $$new/usr/lib/*-linux-gnu | tr ' ' :) \
		ldd $$new/usr/sbin/sshd | grep 'not found') \
		; { [ -z "$$missing" ] || { echo "sshd needs libraries this machine lacks:" \
		"$$missing (add their packages to SSH_PACKAGES)" >&2; false; }; } \
	&& rm -rf $$new/debs && rm -rf $(TOOLS)/ssh && mv -T $$new $(TOOLS)/ssh \
	|| { rm -rf $$new; exit 1; }

lock: | $(TOOLS)/poetry/.installed
	$(POETRY) lock

# The database `run` and `seed` use, decided as the service decides it: MONGO_URI from the
# environment or from .env (a Makefile that looked at the shell alone would pick the embedded
# server while .env names the operator's MongoDB), else the embedded local server (`--embedded`).
# Read when a recipe starts, after `install` built .venv (tools/database_choice.py).
DATABASE_CHOICE = $(eval EMBEDDED := $(shell $(VENV)/bin/python tools/database_choice.py))
SAYS_DATABASE = echo "make: $(if $(EMBEDDED),the embedded local server (.data/): no MONGO_URI in the environment or .env,MONGO_URI from the environment or .env)" >&2

# One sync. Sample data only on the embedded server, and only on first use (data/ does not exist
# yet): with MONGO_URI the folders and the database are real ones, and `make seed` is the one
# explicit way to write sample data into them.
run: install
	$(DATABASE_CHOICE)
	@$(SAYS_DATABASE)
	@$(if $(EMBEDDED),$(MAKE) --no-print-directory tools)
	@$(if $(EMBEDDED),[ -d data ] || $(VENV)/bin/tracos-sync seed --if-empty --embedded)
	@$(VENV)/bin/tracos-sync run $(EMBEDDED)

# A fake ERP API and an embedded server with sample data, one sync each way (.data/demo-http).
demo-http: install tools
	$(VENV)/bin/python tools/demo_http.py

# SAP's CAP server as an API customer's ERP (docs/tutorials/api-customer.md): S/4HANA's maintenance
# order with five sample orders, in the foreground, its data in a folder of its own removed when
# it stops (Ctrl-C, or SIGTERM: make passes its own on).
cap-erp: install tools-cap
	$(VENV)/bin/python -m tests.support.cap --port $(CAP_PORT) --samples

# Refused (exit 2) where work orders already are: the CLI says `--force`, a make user needs FORCE=1.
seed: install
	$(DATABASE_CHOICE)
	@$(SAYS_DATABASE)
	@$(if $(EMBEDDED),$(MAKE) --no-print-directory tools)
	@$(VENV)/bin/tracos-sync seed $(EMBEDDED) $(if $(FORCED),--force,|| { \
		code=$$?; [ $$code -ne 2 ] || echo "make seed: refused as work orders are already there? \
	make seed FORCE=1 writes the sample data anyway (their numbers may then overwrite those)" >&2; \
		exit $$code; })
FORCED = $(filter-out 0,$(FORCE))

# The documentation is built first (strict): a broken link, a missing anchor, a page left out
# of the nav or a setting without a description fails the test run in seconds.
# Two test processes (pytest-xdist): most tests wait on a server or a subprocess, so two keep
# both cores busy and halve the time on this 2-core machine (TEST_WORKERS=0: one process).
TEST_WORKERS ?= 2
# The site just built is the one tests/e2e/test_docs_site.py checks (it builds one itself when
# run alone): one strict build, not two.
test: install tools tools-cap tools-ssh docs
	BUILT_SITE=$(abspath site) $(VENV)/bin/pytest -n $(TEST_WORKERS) --durations=15

# The site (mkdocs.yml, docs/): its reference tables are generated from this checkout's code.
docs: install
	PYTHONPATH=src NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

# The pages keep a copy of the generated tables, to read on the repository browser; a unit test
# fails while one differs from the code.
docs-tables: install
	PYTHONPATH=src $(VENV)/bin/python tools/docs_reference.py

docs-serve: install
	PYTHONPATH=src NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve --dev-addr 127.0.0.1:8000

faults: install tools
	$(VENV)/bin/pytest -n $(TEST_WORKERS) tests/faults

# The long profile of the randomized fault campaign (docs/explanation/campaign.md); prints what it did and
# every violation.
chaos: install tools
	CHAOS_SECONDS=$${CHAOS_SECONDS:-600} $(VENV)/bin/pytest tests/faults/test_campaign.py \
		-k long_campaign -s -p no:cacheprovider

# Benchmarks are not tests: they take minutes and print ratios (see docs/explanation/performance.md).
bench: install tools
	$(VENV)/bin/python bench/bench.py --n $${N:-5000}

bench-memory: install tools
	$(VENV)/bin/python bench/memory.py --n $${N:-100000}

bench-integrations: install tools
	$(VENV)/bin/python bench/integrations.py --integrations $${INTEGRATIONS:-10} --per $${PER:-200}

# The api connector against SAP's CAP server, each way against a bare httpx loop sending the same
# requests (fails over 1.3x): 5,000 orders read, and 5,000 created then updated.
# BENCH_HTTP_ORDERS=500 checks that it runs, in a fraction of the time.
bench-http: install tools-cap
	BENCH_HTTP=1 $(VENV)/bin/pytest -p no:cacheprovider -q -s -n 0 tests/e2e/test_api_reader_cap.py tests/e2e/test_api_writer_cap.py -k timed_against

# The SFTP transport against local folders, each direction (fails over 3x).
bench-sftp: install tools tools-ssh
	$(VENV)/bin/python bench/sftp.py --n $${N:-2000}

# Replicas sharing integrations through leases: 1 against 3, then a take-over after a SIGKILL;
# fails when the 3 are not spread or a file is lost (bench/replicas.py --quick: that it runs).
bench-replicas: install tools
	$(VENV)/bin/python bench/replicas.py --integrations $${INTEGRATIONS:-300} --rate $${RATE:-100} \
		--duration $${DURATION:-60} --ttl $${LEASE_SECONDS:-15}

bench-latency: install tools
	$(VENV)/bin/python bench/latency.py --rates $${RATES:-50,400} --duration $${DURATION:-30} --edit-rate $${EDIT_RATE:-50}

lint: install
	$(VENV)/bin/ruff check src tests tools bench
	$(VENV)/bin/ruff format --check src tests tools bench
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff check --fix src tests tools bench
	$(VENV)/bin/ruff format src tests tools bench

# Environments and caches only: the sample data and the embedded database are kept.
clean:
	rm -rf $(VENV) $(TOOLS) site .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# Client files, archives, exports and the embedded database: everything a run wrote.
clean-data:
	rm -rf data .data

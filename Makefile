# AutoVoice: `make studio` serves everything on this machine, `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
APT_PACKAGES := redis-server chromium ffmpeg sox espeak-ng
PORT ?= 7860

.PHONY: install studio test test-browser lint typecheck dataset train clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	  missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then echo "apt: installing$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; fi; \
	fi
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade 'pip>=24' 
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[all]'
	touch $(STAMP)

studio: install
	$(BIN)/autovoice up --port $(PORT)

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

# `make test` runs every test but the speed tier, in two pytest processes: the unit, integration and slow
# tiers, then the Playwright tier (Debian's Chromium driving `autovoice up`). The browser tier has its own
# process because Playwright's sync API leaves an event loop on the main thread that the studio handler
# tests cannot share; `make test-browser` runs it alone. Playwright never downloads a browser: the tests
# launch /usr/bin/chromium (APT_PACKAGES) and fail, rather than skip, when it is missing.
BROWSER_TESTS := AUTOVOICE_REQUIRE_BROWSER=1 PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 \
  $(BIN)/python -m pytest -m browser tests/browser --durations=10 $(PYTEST_ARGS)

test: install lint
	$(BIN)/python -m pytest -m "not performance and not browser" --durations=15 $(PYTEST_ARGS)
	$(BROWSER_TESTS)

test-browser: install
	$(BROWSER_TESTS)

dataset: install
	$(BIN)/autovoice make-dataset --out data/corpus

clean:
	rm -rf $(VENV) build *.egg-info

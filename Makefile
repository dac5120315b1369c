# Two commands: `make run` (the product with demo data) and `make test` (the whole suite).
# Both install what they need on a fresh Debian/Ubuntu machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_UPDATED := $(VENV)/.apt-updated

.PHONY: run test lint bench-render deps clean

# Debian packages are installed only when their command is missing.
define need_pkg
	@command -v $(1) >/dev/null 2>&1 || { \
	  echo "installing Debian package $(2)"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(2); }
endef

# ... or, for packages without a command (fonts), when their file is missing.
define need_file
	@test -e $(1) || { \
	  echo "installing Debian package $(2)"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(2); }
endef

# The PDFs' Chinese font (server/documents/pdf.py), also the pages' in Chromium.
CJK_FONT ?= /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "Huizhen needs Python 3.11 or newer (found $$($(PYTHON) --version))"; exit 1; }
	@$(PYTHON) -m venv --help >/dev/null 2>&1 && $(PYTHON) -c 'import ensurepip' 2>/dev/null || \
	  { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq python3-venv; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $(STAMP)

deps: $(STAMP)
	$(call need_pkg,redis-server,redis-server)
	$(call need_file,$(CJK_FONT),fonts-noto-cjk)

run: deps
	$(BIN)/huizhen demo
	exec $(BIN)/huizhen serve

test: deps
	$(call need_pkg,chromium,chromium)
	$(call need_pkg,turnserver,coturn)
	$(BIN)/ruff check .
	$(BIN)/python -m tests.run

lint: $(STAMP)
	$(BIN)/ruff check .

bench-render: deps
	$(BIN)/python bench/render.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache

# Two commands on a fresh machine: `make run` (server) and `make test` (everything CI checks).
# `make run` and `make client` install Parley's runtime only (requirements.txt); `make test`
# adds the desktop app and the test and lint tools (requirements-dev.txt).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.runtime-installed
DEV := $(VENV)/.dev-installed
ARGS ?=

.PHONY: run client test lint typecheck unit deploy-test bench screenshots clean

$(RUNTIME): pyproject.toml requirements.txt
	@pkg-config --exists icu-i18n 2>/dev/null && command -v c++ >/dev/null 2>&1 || { \
		echo "PyICU (which compares names) is built against ICU: install libicu-dev, pkg-config"; \
		echo "and g++ (Debian/Ubuntu: apt-get install libicu-dev pkg-config g++), then run make again."; \
		exit 2; }
	@echo "Setting up $(VENV) with Parley's dependencies (the first time a few minutes: PyICU is compiled)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -e .
	touch $(RUNTIME)

$(DEV): $(RUNTIME) requirements-gui.txt requirements-dev.txt
	@echo "Adding the desktop app's, test and lint dependencies to $(VENV)"
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(DEV)

run: $(RUNTIME)  ## set up, then run the server (pass options with ARGS="--port 7000")
	$(BIN)/parley server $(ARGS)

client: $(RUNTIME)  ## set up, then run the terminal client
	$(BIN)/parley client $(ARGS)

lint: $(DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(DEV)
	$(BIN)/mypy

unit: $(DEV)
	$(BIN)/pytest

test: lint typecheck unit  ## set up, lint, type-check and run the whole test suite

deploy-test: $(DEV)  ## only the deployment tests: images, compose stack, systemd unit (podman, root)
	$(BIN)/pytest -m deploy

bench: $(DEV)  ## Parley next to ngIRCd (installs ngIRCd if missing); ARGS="--quick" for a short run
	@# Workloads that measure Parley alone need no ngIRCd.
	@case " $(ARGS) " in *" --no-ngircd "*|*" --smoke "*|*" --only persistence "*|\
		*" --only history "*|*" --only terminal "*|*" --only files "*|\
		*" --only locked-row "*|*" --only cluster "*|*" --only web "*) ;; *) \
		command -v ngircd >/dev/null 2>&1 || test -x /usr/sbin/ngircd || { \
			echo "Installing ngIRCd, the IRC server the benchmark compares Parley with"; \
			sudo=; [ "$$(id -u)" -eq 0 ] || sudo=sudo; \
			$$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
			$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ngircd || { \
				echo "Could not install ngIRCd: install it, or run make bench ARGS=--no-ngircd"; \
				exit 1; }; }; \
	esac
	$(BIN)/python -m bench $(ARGS)

screenshots: $(DEV)  ## the web client's pictures in docs/screenshots (needs Debian's chromium; pngquant shrinks them)
	$(BIN)/python scripts/screenshot_web.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

# Attendant — two commands do all the set-up:  make run  |  make test
# Everything else here is what those two need, plus a few editor and developer conveniences.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV       := .venv
PY         := $(VENV)/bin/python
STAMP      := $(VENV)/.installed-$(shell sha256sum requirements.lock 2>/dev/null | cut -c1-16)
export RASA_TELEMETRY_ENABLED := false
export TF_CPP_MIN_LOG_LEVEL := 2
export SQLALCHEMY_SILENCE_UBER_WARNING := 1
export PYTHONDONTWRITEBYTECODE := 1

# A Python 3.10 interpreter (Rasa 3.6 needs it): $PYTHON310, then PATH, then pyenv's versions folder.
PYTHON310 ?= $(shell for p in python3.10 $$(pyenv root 2>/dev/null)/versions/3.10*/bin/python3.10 \
	$$HOME/.pyenv/versions/3.10*/bin/python3.10 /usr/local/bin/python3.10 /usr/bin/python3.10; do \
	  c=$$(command -v $$p 2>/dev/null) || continue; \
	  $$c -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null && { echo $$c; break; }; \
	done)

.PHONY: help run test venv model seed lint bench soak clean nlu-check browser agents

help:
	@echo "make run    install what is missing, train if the data changed, start Redis (if none), Rasa,"
	@echo "            the action server and the gateway"
	@echo "make test   run the test suite (real Vosk, Piper, Rasa and Redis)"
	@echo "make lint   ruff and mypy"
	@echo "make bench  turn gaps, CPU and capacity under 1-20 callers vs the naive pipeline (bench/turns.py)"
	@echo "make soak   10 callers for 10 minutes with a bad peer alongside: dropped calls, memory, late frames"
	@echo "make agents apply telephony/agents.yml to Asterisk's queues over AMI (ARGS=--dry-run to preview)"

$(STAMP): requirements.lock
	@if [ -z "$(PYTHON310)" ]; then \
	  echo "Attendant needs Python 3.10 (Rasa 3.6 does not run on newer Pythons)." >&2; \
	  echo "Install it, e.g. 'pyenv install 3.10.13' or 'apt-get install python3.10 python3.10-venv'," >&2; \
	  echo "or point PYTHON310=/path/to/python3.10 at one." >&2; exit 1; fi
	@echo "Creating $(VENV) with $(PYTHON310)"
	@[ -x $(PY) ] && $(PY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' || \
	  { rm -rf $(VENV); $(PYTHON310) -m venv $(VENV); }
	$(PY) -m pip install --quiet --upgrade "pip==26.3" "setuptools==70.3.0" "wheel==0.45.1"
	$(PY) -m pip install --quiet --no-deps -r requirements.lock
	$(PY) -m pip check >/dev/null || $(PY) -m pip check
	@rm -f $(VENV)/.installed-*
	@touch $@

PTH := $(VENV)/lib/python3.10/site-packages/attendant.pth

# The repo on the venv's path, so `.venv/bin/python -m telephony.sim` works from any folder.
$(PTH): $(STAMP)
	@echo "$(CURDIR)" > $@

venv: $(STAMP) $(PTH)

model: venv
	@$(PY) -m bot.tools.train

# The customer store (SQLite in .run/ unless ATTENDANT_STORE_URL says otherwise): schema and demo data,
# idempotent, so what callers changed survives.
seed: venv
	@$(PY) -m actions.backends.seed

run: model seed
	@$(PY) -m bot.tools.launch

# The agent console's browser tests drive Debian's Chromium through its chromedriver (selenium is pointed at
# both, so nothing is downloaded). Installed here when missing: root runs apt-get, others sudo.
CHROMIUM     ?= /usr/bin/chromium
CHROMEDRIVER ?= /usr/bin/chromedriver

browser:
	@if [ ! -x "$(CHROMIUM)" ] || [ ! -x "$(CHROMEDRIVER)" ]; then \
	  echo "Installing Debian's chromium and chromium-driver (the console's browser tests need them)"; \
	  if [ "$$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $$sudo apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 || \
	  { $$sudo apt-get update -qq && $$sudo apt-get install -y -qq chromium chromium-driver >/dev/null; } || \
	  { echo "Could not install them: run 'apt-get install chromium chromium-driver' (Debian/Ubuntu)," >&2; \
	    echo "or point CHROMIUM= and CHROMEDRIVER= at a Chromium and its matching chromedriver." >&2; exit 1; }; \
	fi

test: model browser
	ATTENDANT_CHROMIUM=$(CHROMIUM) ATTENDANT_CHROMEDRIVER=$(CHROMEDRIVER) $(PY) -m pytest

nlu-check: venv
	$(PY) -m bot.tools.nlucheck

agents: venv
	$(PY) -m bot.tools.agents apply $(ARGS)

lint: venv
	$(PY) -m ruff check .
	$(PY) -m mypy

# Turn-taking under load, 1, 5, 10 and 20 callers, against the naive pipeline (bench/turns.py; about
# 15 minutes on two quiet cores). ARGS="--callers 1,5 --quick" for a short run. The parts' own speed:
# python -m bench.run.
bench: model
	$(PY) -m bench.turns $(ARGS)

soak: model
	$(PY) -m bench.soak

clean:
	rm -rf $(VENV) models/attendant*.tar.gz models/fingerprint.json .run voices/cache

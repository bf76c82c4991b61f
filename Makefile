# Flagship: `make run` serves the app with demo data, `make test` runs the whole suite.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000

# Newest Python >= 3.12 that actually runs (pyenv shims exist even for versions not selected).
find_python = for candidate in python3.14 python3.13 python3.12 \
	  $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -rV); do \
	  if $$candidate -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; then \
	    echo $$candidate; break; fi; done

.PHONY: install run test lint format migrations-check bench clean

$(VENV)/.installed: requirements.txt
	@python=$$($(find_python)); \
	if [ -z "$$python" ]; then \
	  echo "Flagship needs Python 3.12 or newer (Django 6); none was found on the PATH." >&2; \
	  echo "Install python3.12 or python3.13 and run make again." >&2; exit 1; fi; \
	if [ ! -x $(PY) ]; then echo "Creating $(VENV) with $$python"; $$python -m venv $(VENV); fi
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $@

install: $(VENV)/.installed

run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	$(PY) manage.py collectstatic --noinput --verbosity 0
	PORT=$(PORT) exec $(VENV)/bin/gunicorn --config flagship/gunicorn.conf.py flagship.wsgi

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

migrations-check: install
	$(PY) manage.py makemigrations --check --dry-run

# Loads 1M approval requests into PostgreSQL (database flagship_bench) and measures the API
# with wrk; see bench/README.md. BENCH_ARGS="--skip-load" reuses the loaded database.
bench: install
	$(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .ruff_cache

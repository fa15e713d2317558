# Two commands for a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
export FLASK_APP := booking.app:create_app

.PHONY: run test lint install assets system demo-db clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Re-install only when the dependency list changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

node_modules/.installed: package.json
	./scripts/ensure-system.sh
	npm install --no-audit --no-fund --silent
	touch $@

install: $(VENV)/.installed node_modules/.installed

run: install
	ASYE_DEMO=1 $(BIN)/flask db upgrade
	ASYE_DEMO=1 $(BIN)/flask seed-demo
	@echo "Serving the demo programme at http://127.0.0.1:$(PORT)  (mail goes to the outbox: /coordinator/outbox)"
	ASYE_DEMO=1 MAIL_WORKER=1 BASE_URL=http://127.0.0.1:$(PORT) $(BIN)/waitress-serve --listen=127.0.0.1:$(PORT) --call booking.app:create_app

test: install
	./scripts/ensure-system.sh --browser
	./scripts/ensure-postgres.sh
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy scheduler booking invoicing
	$(BIN)/pytest -p no:cacheprovider $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy scheduler booking invoicing

bench: install
	$(BIN)/python -m benchmarks.allocation

clean:
	rm -rf $(VENV) node_modules instance

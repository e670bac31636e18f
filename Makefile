# CineMatch: `make demo` and `make test` are the two commands; the rest is sugar.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

export CINEMATCH_HOME ?= $(CURDIR)/data
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: help install java preflight test materialize studies ui app api demo bench cluster-up cluster-down lint format clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(INSTALLED): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@

install: $(INSTALLED)  ## create .venv with the pinned stack

java: $(INSTALLED)  ## find Java >= 17, or fetch a Temurin JRE 21 into the user cache
	@$(BIN)/python -m cinematch_assets.ops.java

$(DAGSTER_HOME)/dagster.yaml:
	mkdir -p $(DAGSTER_HOME)
	printf 'telemetry:\n  enabled: false\n' > $@

test: install java  ## the whole default test suite
	$(BIN)/pytest

preflight: install  ## check that the MovieLens source (download or local copy) is usable
	@$(BIN)/python -m cinematch_assets.ops.preflight

materialize: install java preflight $(DAGSTER_HOME)/dagster.yaml  ## run the product job: raw to serving (headless)
	$(BIN)/dagster job execute -m cinematch_assets.definitions -j cinematch_product

studies: install java $(DAGSTER_HOME)/dagster.yaml  ## run the studies job on the last product run's models (headless)
	$(BIN)/dagster job execute -m cinematch_assets.definitions -j cinematch_studies

ui: install $(DAGSTER_HOME)/dagster.yaml  ## Dagster UI on http://127.0.0.1:3000
	$(BIN)/dagster dev -h 127.0.0.1 -p 3000 -w workspace.yaml

APP_PORT ?= 8501
STREAMLIT := $(BIN)/streamlit run app/streamlit_app.py --server.address 127.0.0.1 --server.port $(APP_PORT)

app: install  ## the CineMatch app on http://127.0.0.1:8501, on the last materialization
	$(STREAMLIT)

API_HOST ?= 127.0.0.1
API_PORT ?= 8000
api: install  ## the JSON API on http://127.0.0.1:8000 (docs at /docs), on the same serving files
	$(BIN)/uvicorn app.api:app --host $(API_HOST) --port $(API_PORT) --workers $$(nproc)

demo: materialize $(DAGSTER_HOME)/dagster.yaml  ## fresh clone -> everything materialized -> Dagster UI :3000 + app :8501
	@echo "Dagster UI: http://127.0.0.1:3000   CineMatch app: http://127.0.0.1:$(APP_PORT)   (Ctrl-C stops both)"
	@echo "Ratings saved in the app reach the visitor's list within a minute once app_ratings_sensor is on (Dagster UI > Automation)."
	$(BIN)/python -m cinematch_assets.ops.demo --dagster-port 3000 --app-port $(APP_PORT)

SHARED_ARCHIVE := ../shared/data/movielens/ml-latest-small-2016.zip
BENCH_LOCAL ?= $(or $(CINEMATCH_MOVIELENS),$(wildcard $(SHARED_ARCHIVE)))
BENCH_VARIANTS ?= synthetic-1m
# The serving benchmark's shape (default: ML-33M's 330k users x 73k known + 13k new movies).
BENCH_SERVING_ARGS ?=
# Where the serving benchmark leaves its files, for the API's and the feedback loop's.
BENCH_SERVING_HOME ?= $(CINEMATCH_HOME)/benchmarks/serving-home

bench: install java  ## time the product and studies jobs (MovieLens copy, synthetic data), content vectors and serving at ML-33M's shape
	$(if $(BENCH_LOCAL),$(BIN)/python -m benchmarks.pipeline --local $(BENCH_LOCAL))
	$(if $(BENCH_LOCAL),$(BIN)/python -m benchmarks.sequels --archive $(BENCH_LOCAL))
	for variant in $(BENCH_VARIANTS); do \
	  $(BIN)/python -m benchmarks.pipeline --variant $$variant --als-iterations || exit 1; done
	$(BIN)/python -m benchmarks.content
	$(BIN)/python -m benchmarks.serving --keep-home $(BENCH_SERVING_HOME) $(BENCH_SERVING_ARGS)
	for home in $(if $(wildcard $(CINEMATCH_HOME)/serving/recommendations/manifest.json),$(CINEMATCH_HOME)) $(BENCH_SERVING_HOME); do \
	  $(BIN)/python -m benchmarks.api --home $$home && \
	  $(BIN)/python -m benchmarks.feedback_loop --home $$home || exit 1; done

cluster-up: install  ## Spark standalone master + 2 workers on 127.0.0.1; prints the exports to use it
	@$(BIN)/python -m cinematch_assets.ops.cluster up

cluster-down:  ## stop the standalone cluster
	@$(BIN)/python -m cinematch_assets.ops.cluster down

lint: install  ## ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:  ## remove generated data and Dagster runs (keeps .venv)
	rm -rf $(CINEMATCH_HOME) $(DAGSTER_HOME)

# One entry point for everything: a fresh Debian/Ubuntu machine with Python 3.11+ needs only `make demo` and
# `make test` (Java, Maven, kcat, chromium and Alertmanager are installed with apt-get when missing:
# tools/need.sh).
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PYTHON := $(abspath $(BIN)/python)

.PHONY: help venv install check lint typecheck test unit soak demo bench bench-budget kafka-up kafka-down kafka-status tools kafka-tools clean

help:
	@echo "make demo        run the end-to-end demo on a local Kafka (started and stopped for it)"
	@echo "make test        the whole suite, Kafka integration tests included"
	@echo "make check       ruff + mypy --strict"
	@echo "make soak        the crash tests, longer (SOAK_KILLS=40 SOAK_EVENTS=500000)"
	@echo "make bench       the benchmarks on a real broker: one table, JSON in .cache/bench/ (BENCH_ARGS=--quick)"
	@echo "make bench-budget the false-alarm budget on simulated null and shifted fleets (no broker)"
	@echo "make kafka-up    start the local broker (prints KAFKA_BOOTSTRAP_SERVERS=...)"
	@echo "make kafka-down  stop it"

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON_SYS) -m venv $(VENV) || { echo "make: could not create $(VENV) with $(PYTHON_SYS) (Python 3.11+ with venv needed)"; exit 1; }
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

PYTHON_SYS ?= python3
install: venv

# kcat (librdkafka's CLI) is an independent client the tests use to check interoperability; headless
# chromium renders the replay report the way an operator's browser does; a real Alertmanager receives what
# `alerts route` sends it.
tools: kafka-tools
	@tools/need.sh kcat kcat
	@tools/need.sh chromium chromium
	@tools/need.sh prometheus-alertmanager prometheus-alertmanager

# Java and Maven run the local broker (tools/kafka/kafka.sh); not needed with KAFKA_BOOTSTRAP_SERVERS set.
kafka-tools:
	@[ -n "$${KAFKA_BOOTSTRAP_SERVERS:-}" ] || tools/need.sh java openjdk-17-jre-headless
	@[ -n "$${KAFKA_BOOTSTRAP_SERVERS:-}" ] || tools/need.sh mvn maven

lint: venv
	$(BIN)/ruff check streamdrift tests benchmarks
	$(BIN)/ruff format --check streamdrift tests benchmarks

typecheck: venv
	$(BIN)/mypy

check: lint typecheck

# The whole suite against a real broker; exit status is pytest's (5, "no tests ran", counts as failure).
test: venv tools
	@tools/with-kafka.sh tools/run-pytest.sh $(PYTEST_ARGS)

# Longer crash tests: more kill -9s over more events (override SOAK_KILLS / SOAK_EVENTS). They outlast the
# suite's per-test timeout, so it is lifted here (`--timeout=0`); the tests' own deadlines still apply.
SOAK_KILLS ?= 40
SOAK_EVENTS ?= 500000
soak: venv tools
	@STREAMDRIFT_SOAK_KILLS=$(SOAK_KILLS) STREAMDRIFT_SOAK_EVENTS=$(SOAK_EVENTS) \
	  tools/with-kafka.sh tools/run-pytest.sh tests/integration/test_exactly_once.py -k kill_9 --timeout=0

# Pure-core tests only: no broker needed.
unit: venv tools
	$(BIN)/pytest -m "not kafka" $(PYTEST_ARGS)

demo: venv kafka-tools
	@tools/need.sh prometheus-alertmanager prometheus-alertmanager
	@tools/with-kafka.sh $(BIN)/streamdrift demo

# Throughput, latency, scale and scale-out against a real broker (see benchmarks/__init__.py).
bench: venv tools
	@tools/with-kafka.sh $(BIN)/python -m benchmarks $(BENCH_ARGS)

# The false-alarm budget on simulated fleets of 1,000 models x 20 features (benchmarks/budget.py).
bench-budget: venv
	$(BIN)/python -m benchmarks.budget

kafka-up: venv kafka-tools
	@tools/kafka/kafka.sh up

kafka-down:
	@tools/kafka/kafka.sh down

kafka-status:
	@tools/kafka/kafka.sh status

clean:
	-tools/kafka/kafka.sh down
	rm -rf $(VENV) .cache build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis

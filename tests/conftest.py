"""Shared pytest configuration for the project's tests."""

# The conformance harness (tests/conformance) is run by its own command and
# unpacks the reference's tests outside the repository; pytest must not
# collect it as part of the project's test suite.
collect_ignore = ["conformance"]

"""Whether this run has the CPython-internal shortcuts switched off
(EVENTSOURCING_RS_NO_CPYTHON_SHORTCUTS, see rust/bindings/cpython_internals.rs).

Without type version tags no method guard holds, so every Rust fast path
gives way to its Python one: tests that check a fast path ran are skipped
then, and every other test runs on the fallbacks."""

from __future__ import annotations

import os

import pytest

SWITCH = "EVENTSOURCING_RS_NO_CPYTHON_SHORTCUTS"

shortcuts_off = os.environ.get(SWITCH, "").strip() not in ("", "0")

needs_shortcuts = pytest.mark.skipif(
    shortcuts_off, reason=f"{SWITCH} is set: the Rust fast paths give way to Python"
)

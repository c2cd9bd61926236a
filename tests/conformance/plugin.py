"""Pytest plugin for the conformance run (copied into the scratch tree as conftest.py).

It is not imported from the repository: ``run.py`` copies this file to
``<scratch>/esrs_conformance/conftest.py`` so that every pytest invocation of
the conformance run loads it. It reads a JSON plan named by the environment
variable ``ESRS_CONFORMANCE_PLAN`` and

* deselects the tests the plan lists (exclusions, and PostgreSQL tests when no
  server is reachable), recording each with its reason;
* records every test outcome, and every collection error, as one JSON line in
  the plan's results file, flushed at once, so that a run killed by the
  harness's timeout still leaves what it had done (and the test that hung);
* refuses imports of the packages the plan blocks (the reference
  ``eventsourcing``), so a prefix the rewrite missed fails loudly instead of
  silently testing the reference implementation.
"""

from __future__ import annotations

import fnmatch
import importlib.abc
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

PLAN_ENV = "ESRS_CONFORMANCE_PLAN"
MESSAGE_LIMIT = 240


def _load_plan() -> dict[str, Any]:
    path = os.environ.get(PLAN_ENV)
    if not path:
        # Running the scratch tree by hand: no deselection, no recording.
        return {"deselect": [], "results": None, "blocked": []}
    return json.loads(Path(path).read_text(encoding="utf-8"))


PLAN = _load_plan()


class _BlockedImportFinder(importlib.abc.MetaPathFinder):
    """Refuses the blocked top-level packages wherever they are installed."""

    def __init__(self, blocked: list[str]) -> None:
        self.blocked = set(blocked)

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> None:
        if fullname.split(".", 1)[0] in self.blocked:
            raise ModuleNotFoundError(
                f"conformance run: refusing to import {fullname!r}; the test "
                "sources must import the package under test (prefix not rewritten?)",
                name=fullname,
            )
        return None


if PLAN["blocked"]:
    sys.meta_path.insert(0, _BlockedImportFinder(PLAN["blocked"]))


def _record(event: dict[str, Any]) -> None:
    results = PLAN["results"]
    if not results:
        return
    with open(results, "a", encoding="utf-8") as stream:
        stream.write(json.dumps(event) + "\n")
        stream.flush()


def _matches(nodeid: str, pattern: str) -> bool:
    if any(ch in pattern for ch in "*?["):
        return fnmatch.fnmatchcase(nodeid, pattern)
    # A file or class pattern selects everything below it.
    return nodeid == pattern or nodeid.startswith(pattern + "::")


def _deselection_for(nodeid: str) -> dict[str, str] | None:
    for entry in PLAN["deselect"]:
        if _matches(nodeid, entry["pattern"]):
            return entry
    return None


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        entry = _deselection_for(item.nodeid)
        if entry is None:
            kept.append(item)
            continue
        dropped.append(item)
        _record(
            {
                "event": "deselected",
                "nodeid": item.nodeid,
                "kind": entry["kind"],
                "reason": entry["reason"],
            }
        )
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:MESSAGE_LIMIT]


def _message(report: pytest.CollectReport | pytest.TestReport) -> str:
    """The one line that says why a test failed or was skipped."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):
        # Skips are reported as (path, lineno, "Skipped: reason").
        return _first_line(str(longrepr[2]))
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:
        return _first_line(crash.message)
    # Import errors at collection come as plain text; the "E" lines carry
    # the exception, and the last one is the one raised.
    error_lines = [line[1:].strip() for line in str(longrepr).splitlines() if line.startswith("E ")]
    if error_lines:
        return error_lines[-1][:MESSAGE_LIMIT]
    return _first_line(str(longrepr))


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed:
        _record(
            {
                "event": "collect-error",
                "nodeid": report.nodeid,
                "message": _message(report),
            }
        )


def pytest_runtest_logstart(nodeid: str, location: tuple[str, Any, str]) -> None:
    _record({"event": "start", "nodeid": nodeid})


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.passed and report.when != "call":
        # Passing setup and teardown say nothing the call phase does not.
        return
    event: dict[str, Any] = {
        "event": "report",
        "nodeid": report.nodeid,
        "when": report.when,
        "outcome": report.outcome,
        "message": "" if report.passed else _message(report),
    }
    _record(event)

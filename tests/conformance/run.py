#!/usr/bin/env python3
"""Conformance harness: the eventsourcing 9.1.0 tests, run against eventsourcing_rs.

Usage::

    python tests/conformance/run.py [--group NAME ...] [-- PYTEST_ARGS ...]

What it does, in order:

1. Fetches the reference sdist with ``pip download --no-deps --no-binary :all:
   eventsourcing==9.1.0`` into a cache directory outside the repository
   (``$ESRS_CONFORMANCE_CACHE``, default ``~/.cache/eventsourcing-rs/conformance``)
   unless it is already there, and checks its sha256; a different file stops
   the run. The sdist is never copied into the repository.
2. Unpacks ``eventsourcing/tests`` and ``eventsourcing/examples`` (the example
   applications the example tests import, and ``tests/ramdisk.py`` and the
   shared ``*_testcase.py`` modules, come with them) into a scratch directory,
   recreated on every run, and rewrites the import prefix.
3. Installs the peer tests' own needs (psycopg2-binary, pycryptodome) into
   the running interpreter's environment, if missing.
4. Runs each group of test files as its own pytest invocation and prints one
   line per group and, as the last line, ``N passed, M failed, K skipped``.

Scratch layout, and why. In the reference the tests are the package
``eventsourcing.tests`` and import each other as such
(``from eventsourcing.tests.aggregaterecorder_testcase import ...``). Mapping
them into ``eventsourcing_rs.tests`` would mean installing files into, or
patching the ``__path__`` of, the package under test. Instead the scratch tree
is its own top-level package::

    <scratch>/                  pytest's working directory (on sys.path)
        esrs_conformance/       rootdir: pytest.ini, conftest.py (plugin.py)
            __init__.py
            tests/              eventsourcing/tests, rewritten
            examples/           eventsourcing/examples, rewritten

and the sources are rewritten by three rules, applied in this order:

* ``eventsourcing.tests`` / ``eventsourcing.examples`` -> ``esrs_conformance.tests``
  / ``esrs_conformance.examples`` (imports, and expected reprs of classes the
  tests define, such as ``<class 'eventsourcing.tests.test_eventmapper...``);
* any other ``eventsourcing.<name>`` -> ``eventsourcing_rs.<name>`` (imports,
  topic strings like ``"eventsourcing.sqlite:Factory"``, expected reprs such
  as ``<class 'eventsourcing.system.Leader'>``);
* a bare ``import eventsourcing`` / ``from eventsourcing import`` ->
  ``eventsourcing_rs``.

The word ``eventsourcing`` on its own (database, user and password names in
the PostgreSQL tests) is left alone. Because the rootdir is the scratch
package, node ids read like the sdist's own paths (``tests/test_sqlite.py::
TestTransaction``), which is what ``exclusions.txt`` uses. The plugin blocks
imports of the reference package, so a prefix missed by the rewrite fails
loudly instead of testing the reference implementation by accident.

``--reference`` runs the same tests against the unmodified reference package
(unpacked into the scratch directory beside ``esrs_conformance``): a baseline
that tells failures caused by the Python version from failures of the port.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
EXCLUSIONS_FILE = HERE / "exclusions.txt"
PLUGIN_FILE = HERE / "plugin.py"

REFERENCE = "eventsourcing"
REFERENCE_VERSION = "9.1.0"
SDIST_NAME = f"{REFERENCE}-{REFERENCE_VERSION}.tar.gz"
SDIST_SHA256 = "13d764287944fedf57e10e47961dcf95e5cf8823b4fbb9dfbf0f7e6d9ed86842"
TARGET = "eventsourcing_rs"
SCRATCH_PACKAGE = "esrs_conformance"

CACHE_ENV = "ESRS_CONFORMANCE_CACHE"
DEFAULT_CACHE = Path.home() / ".cache" / "eventsourcing-rs" / "conformance"
PLAN_ENV = "ESRS_CONFORMANCE_PLAN"
SCRATCH_MARKER = ".esrs-conformance-scratch"

# Import name -> requirement. Bounds follow the reference's own extras.
TEST_DEPENDENCIES = {
    "psycopg2": "psycopg2-binary>=2.9,<2.10",
    "Crypto": "pycryptodome>=3.10,<4",
}

# The modules whose public API the project promises (DESIGN.md).
PUBLIC_MODULES = (
    "domain",
    "application",
    "persistence",
    "popo",
    "sqlite",
    "postgres",
    "system",
    "utils",
    "cipher",
    "compressor",
    "dispatch",
    "interface",
)

# Every test file of the sdist belongs to exactly one group; the harness
# checks this against the unpacked sdist, so a file can't go unrun silently.
GROUPS: dict[str, tuple[str, ...]] = {
    "system": (
        "tests/test_system.py",
        "tests/test_runner.py",
        "tests/test_processapplication.py",
        "tests/test_processingpolicy.py",
        "tests/test_notificationlogreader.py",
    ),
    "application": (
        "tests/test_application_with_popo.py",
        "tests/test_application_with_automatic_snapshotting.py",
        "tests/test_snapshotting.py",
        "tests/test_repository.py",
        "tests/test_notificationlog.py",
        "tests/test_remotenotificationlog.py",
        "tests/test_eventstore.py",
        "tests/test_eventmapper.py",
        "tests/test_aes.py",
        "tests/test_infrastructure_factory.py",
        "tests/test_upcasting.py",
    ),
    "persistence-popo": ("tests/test_popo.py",),
    "persistence-sqlite": (
        "tests/test_sqlite.py",
        "tests/test_application_with_sqlite.py",
    ),
    "persistence-postgres": (
        "tests/test_postgres.py",
        "tests/test_application_with_postgres.py",
        "tests/test_noninterleaving_notification_ids.py",
    ),
    "domain": (
        "tests/test_aggregate.py",
        "tests/test_aggregate_decorators.py",
        "tests/test_domainevent.py",
    ),
    "utils": ("tests/test_utils.py",),
    "examples": (
        "examples/bankaccounts/test.py",
        "examples/cargoshipping/test.py",
        "examples/test_invoice.py",
        "examples/test_parking_lot.py",
    ),
    "docs": ("tests/test_docs.py",),
}
POSTGRES_GROUP = "persistence-postgres"

# Tests outside the PostgreSQL group that need a server in their setUp.
NEEDS_POSTGRES = (
    "tests/test_runner.py::TestMultiThreadedRunnerWithPostgres",
    "tests/test_docs.py::TestDocs",
)

# The reference tests hard-code these connection settings; the environment
# may say otherwise only for the reachability probe.
POSTGRES_DEFAULTS = {
    "POSTGRES_HOST": "127.0.0.1",
    "POSTGRES_PORT": "5432",
    "POSTGRES_DBNAME": "eventsourcing",
    "POSTGRES_USER": "eventsourcing",
    "POSTGRES_PASSWORD": "eventsourcing",
}

SCRATCH_PREFIX_RE = re.compile(r"(?<![\w.])eventsourcing\.(tests|examples)\b")
MODULE_PREFIX_RE = re.compile(r"(?<![\w.])eventsourcing(?=\.[A-Za-z_])")
BARE_IMPORT_RE = re.compile(
    r"^(\s*(?:import\s+|from\s+))eventsourcing(?=\s*$|\s+import\b|\s+as\b)",
    re.MULTILINE,
)

PYTEST_INI = """\
[pytest]
# Written by tests/conformance/run.py; the scratch tree is recreated every run.
addopts = -p no:cacheprovider
python_files = test_*.py test.py
"""

PREFLIGHT_SCRIPT = """\
import importlib, json, sys
package, modules = sys.argv[1], sys.argv[2:]
found = {}
try:
    found["__location__"] = importlib.import_module(package).__file__
except Exception as error:
    found["__location__"] = None
    found["__error__"] = f"{type(error).__name__}: {error}"
for name in modules:
    try:
        importlib.import_module(f"{package}.{name}")
        found[name] = None
    except BaseException as error:
        found[name] = f"{type(error).__name__}: {error}".splitlines()[0][:160]
print(json.dumps(found))
"""


class HarnessError(Exception):
    """A problem with the harness's inputs: the run cannot start."""


@dataclass(frozen=True)
class Deselection:
    pattern: str
    kind: str  # "excluded" or "needs-postgres"
    reason: str


@dataclass
class GroupResult:
    name: str
    passed: int = 0
    failed: int = 0  # includes errors
    errors: int = 0
    skipped: int = 0  # skipped by the tests themselves
    deselected: Counter[str] = field(default_factory=Counter)
    failures: list[tuple[str, str]] = field(default_factory=list)
    skip_reasons: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    not_run_reason: str | None = None
    seconds: float = 0.0
    log: Path | None = None

    @property
    def total_skipped(self) -> int:
        return self.skipped + sum(self.deselected.values())

    def counts(self) -> str:
        return f"{self.passed} passed, {self.failed} failed, {self.total_skipped} skipped"


# --------------------------------------------------------------------------
# Fetching and unpacking the reference


def cache_dir() -> Path:
    configured = os.environ.get(CACHE_ENV)
    path = Path(configured).expanduser() if configured else DEFAULT_CACHE
    return ensure_outside_repo(path.resolve(), "cache directory")


def ensure_outside_repo(path: Path, what: str) -> Path:
    # The reference's files must never be picked up by git or by pytest's
    # collection of the project's own tests.
    if path == REPO_ROOT or REPO_ROOT in path.parents:
        raise HarnessError(f"the {what} {path} is inside the repository {REPO_ROOT}")
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_sdist(cache: Path) -> Path:
    sdist = cache / SDIST_NAME
    if not sdist.exists():
        cache.mkdir(parents=True, exist_ok=True)
        print(f"downloading {REFERENCE}=={REFERENCE_VERSION} (sdist) into {cache}")
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--disable-pip-version-check",
            "--quiet",
            "--no-deps",
            "--no-binary",
            ":all:",
            f"{REFERENCE}=={REFERENCE_VERSION}",
            "--dest",
            str(cache),
        ]
        if subprocess.run(command, stdin=subprocess.DEVNULL).returncode != 0:
            raise HarnessError(f"pip download of {REFERENCE}=={REFERENCE_VERSION} failed")
        if not sdist.exists():
            raise HarnessError(f"pip download did not produce {sdist}")
    actual = sha256_of(sdist)
    if actual != SDIST_SHA256:
        raise HarnessError(
            f"sha256 mismatch for {sdist}\n"
            f"  expected {SDIST_SHA256}\n  actual   {actual}\n"
            "refusing to run tests from an unverified file; delete it to download again"
        )
    return sdist


def scratch_destination(relative: PurePosixPath, with_reference: bool) -> PurePosixPath | None:
    """Where a file of the sdist's ``eventsourcing/`` directory goes, if anywhere."""
    if ".." in relative.parts:
        return None
    if len(relative.parts) > 1 and relative.parts[0] in ("tests", "examples"):
        return PurePosixPath(SCRATCH_PACKAGE) / relative
    if with_reference and len(relative.parts) == 1:
        return PurePosixPath(REFERENCE) / relative
    return None


def unpack(sdist: Path, scratch: Path, with_reference: bool) -> list[PurePosixPath]:
    """Unpack what the run needs; returns paths relative to the scratch root."""
    prefix = f"{REFERENCE}-{REFERENCE_VERSION}/{REFERENCE}/"
    written: list[PurePosixPath] = []
    with tarfile.open(sdist) as archive:
        for member in archive.getmembers():
            if not member.isfile() or not member.name.startswith(prefix):
                continue
            relative = PurePosixPath(member.name[len(prefix) :])
            destination = scratch_destination(relative, with_reference)
            stream = archive.extractfile(member)
            if destination is None or stream is None:
                continue
            target = scratch / destination
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(stream.read())
            written.append(destination)
    if not any(path.parts[0] == SCRATCH_PACKAGE for path in written):
        raise HarnessError(f"{sdist} holds no {REFERENCE}/tests or {REFERENCE}/examples")
    return written


def rewrite_source(text: str, implementation: str) -> tuple[str, int]:
    """Point the reference's tests at the scratch package and at ``implementation``."""
    text, scratch_count = SCRATCH_PREFIX_RE.subn(rf"{SCRATCH_PACKAGE}.\1", text)
    text, module_count = MODULE_PREFIX_RE.subn(implementation, text)
    text, bare_count = BARE_IMPORT_RE.subn(rf"\g<1>{implementation}", text)
    return text, scratch_count + module_count + bare_count


def rewrite_tree(scratch: Path, files: list[PurePosixPath], implementation: str) -> int:
    total = 0
    for relative in files:
        if relative.parts[0] != SCRATCH_PACKAGE or relative.suffix != ".py":
            continue
        path = scratch / relative
        text, count = rewrite_source(path.read_text(encoding="utf-8"), implementation)
        path.write_text(text, encoding="utf-8")
        total += count
    return total


def prepare_scratch(sdist: Path, scratch: Path, implementation: str) -> list[str]:
    """Lay out the scratch tree; returns the test files, relative to the rootdir."""
    clear_scratch(scratch)
    files = unpack(sdist, scratch, with_reference=implementation == REFERENCE)
    rewrites = rewrite_tree(scratch, files, implementation)
    package = scratch / SCRATCH_PACKAGE
    (package / "__init__.py").write_text(
        '"""eventsourcing 9.1.0 tests and examples, rewritten by run.py."""\n',
        encoding="utf-8",
    )
    (package / "pytest.ini").write_text(PYTEST_INI, encoding="utf-8")
    shutil.copyfile(PLUGIN_FILE, package / "conftest.py")
    for name in ("plans", "results", "logs"):
        (scratch / name).mkdir()
    print(f"scratch: {scratch} ({len(files)} files unpacked, {rewrites} prefixes rewritten)")
    return sorted(
        str(PurePosixPath(*path.parts[1:]))
        for path in files
        if path.parts[0] == SCRATCH_PACKAGE and is_test_file(path)
    )


def clear_scratch(scratch: Path) -> None:
    """Recreate the scratch directory, refusing to delete one we didn't make."""
    marker = scratch / SCRATCH_MARKER
    if scratch.exists() and any(scratch.iterdir()) and not marker.exists():
        raise HarnessError(
            f"{scratch} is not empty and was not made by this harness; choose another --scratch"
        )
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    marker.write_text("made by tests/conformance/run.py\n", encoding="utf-8")


def is_test_file(path: PurePosixPath) -> bool:
    return path.suffix == ".py" and (path.name == "test.py" or path.name.startswith("test_"))


def check_assignment(test_files: list[str]) -> None:
    assigned = [path for files in GROUPS.values() for path in files]
    duplicated = sorted({path for path in assigned if assigned.count(path) > 1})
    unassigned = sorted(set(test_files) - set(assigned))
    missing = sorted(set(assigned) - set(test_files))
    problems = []
    if duplicated:
        problems.append(f"in more than one group: {duplicated}")
    if unassigned:
        problems.append(f"in no group: {unassigned}")
    if missing:
        problems.append(f"assigned but not in the sdist: {missing}")
    if problems:
        raise HarnessError("test files and groups disagree; " + "; ".join(problems))


# --------------------------------------------------------------------------
# Exclusions


def load_exclusions(path: Path, test_files: list[str]) -> list[Deselection]:
    """Parse ``<nodeid>  # <reason>`` lines; every entry needs a reason."""
    exclusions = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pattern, _, reason = (part.strip() for part in line.partition("#"))
        where = f"{path.name}:{number}"
        if not reason:
            raise HarnessError(f"{where}: an exclusion needs a reason after '#'")
        if not pattern or any(ch.isspace() for ch in pattern):
            raise HarnessError(f"{where}: expected one node id before '#', got {pattern!r}")
        file_part = pattern.split("::", 1)[0]
        if file_part not in test_files:
            raise HarnessError(f"{where}: {file_part} is not a test file of the sdist")
        exclusions.append(Deselection(pattern, "excluded", reason))
    return exclusions


# --------------------------------------------------------------------------
# The test environment


def install_test_dependencies() -> None:
    missing = [
        requirement
        for module, requirement in TEST_DEPENDENCIES.items()
        if importlib.util.find_spec(module) is None
    ]
    if not missing:
        print(f"test dependencies: present ({', '.join(TEST_DEPENDENCIES.values())})")
        return
    print(f"test dependencies: installing {' '.join(missing)} into {sys.prefix}")
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--quiet",
        *missing,
    ]
    if subprocess.run(command, stdin=subprocess.DEVNULL).returncode != 0:
        raise HarnessError(f"could not install the test dependencies {missing}")
    importlib.invalidate_caches()


def report_imports(implementation: str, scratch: Path) -> None:
    """Say which package is under test and which of its modules import."""
    command = [sys.executable, "-c", PREFLIGHT_SCRIPT, implementation, *PUBLIC_MODULES]
    completed = subprocess.run(
        command, cwd=scratch, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    try:
        found: dict[str, str | None] = json.loads(completed.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        print(f"import check: could not run ({completed.stderr.strip()[-300:]})")
        return
    location = found.pop("__location__")
    if location is None:
        print(f"package under test: {implementation} NOT IMPORTABLE ({found['__error__']})")
        return
    print(f"package under test: {implementation} from {location}")
    importing = [name for name, error in found.items() if error is None]
    failing = {name: error for name, error in found.items() if error is not None}
    print(f"  modules importing: {', '.join(importing) or 'none'}")
    for name, error in failing.items():
        print(f"  module failing:    {implementation}.{name}: {error}")


def postgres_settings() -> dict[str, str]:
    return {key: os.environ.get(key) or default for key, default in POSTGRES_DEFAULTS.items()}


def probe_postgres() -> str | None:
    """None if a PostgreSQL server accepts the test credentials, else why not."""
    settings = postgres_settings()
    where = f"{settings['POSTGRES_HOST']}:{settings['POSTGRES_PORT']}"
    try:
        import psycopg2
    except ImportError:
        return probe_tcp(settings["POSTGRES_HOST"], int(settings["POSTGRES_PORT"]))
    try:
        connection = psycopg2.connect(
            dbname=settings["POSTGRES_DBNAME"],
            host=settings["POSTGRES_HOST"],
            port=settings["POSTGRES_PORT"],
            user=settings["POSTGRES_USER"],
            password=settings["POSTGRES_PASSWORD"],
            connect_timeout=5,
        )
    except psycopg2.Error as error:
        detail = " ".join(str(error).split())[:200]
        return (
            f"no PostgreSQL server reachable at {where} with database "
            f"{settings['POSTGRES_DBNAME']!r}, user {settings['POSTGRES_USER']!r} "
            f"({detail})"
        )
    connection.close()
    return None


def probe_tcp(host: str, port: int) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=5):
            return None
    except OSError as error:
        return f"no PostgreSQL server reachable at {host}:{port} ({error})"


# --------------------------------------------------------------------------
# Running a group


def run_pytest(
    command: list[str],
    env: dict[str, str],
    cwd: Path,
    log_path: Path,
    echo: bool,
    timeout: float,
) -> int | None:
    """Run pytest in its own process group; None if it had to be killed."""
    with log_path.open("w", encoding="utf-8") as log:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,
        )
        assert process.stdout is not None
        pump = threading.Thread(target=copy_output, args=(process.stdout, log, echo), daemon=True)
        pump.start()
        try:
            return_code: int | None = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_process_group(process)
            return_code = None
        pump.join(timeout=10)
    return return_code


def copy_output(source: IO[str], log: IO[str], echo: bool) -> None:
    for line in source:
        log.write(line)
        if echo:
            sys.stdout.write(line)
            sys.stdout.flush()


def stop_process_group(process: subprocess.Popen[str]) -> None:
    # Tests that hang usually hold non-daemon threads: ask, then insist.
    # The group is the one pytest was started in, so only its processes go.
    for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def read_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue  # a line cut short by a kill
    return events


def classify(event: dict[str, Any]) -> str:
    if event["outcome"] == "failed":
        return "failed" if event["when"] == "call" else "error"
    return str(event["outcome"])


# When one test yields several reports (a failed call and a failed teardown),
# it is counted once, by its worst outcome.
SEVERITY = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}


def tally(result: GroupResult, events: list[dict[str, Any]], timed_out: str | None) -> None:
    outcomes: dict[str, tuple[str, str]] = {}
    started: list[str] = []
    for event in events:
        kind = event["event"]
        if kind == "deselected":
            result.deselected[event["kind"]] += 1
        elif kind == "collect-error":
            add_failure(result, "error", event["nodeid"], event["message"])
        elif kind == "start":
            started.append(event["nodeid"])
        elif kind == "report":
            status = classify(event)
            previous = outcomes.get(event["nodeid"])
            if previous is None or SEVERITY[status] > SEVERITY[previous[0]]:
                outcomes[event["nodeid"]] = (status, event["message"])
    for nodeid, (status, message) in outcomes.items():
        if status == "passed":
            result.passed += 1
        elif status == "skipped":
            result.skipped += 1
            result.skip_reasons[message] += 1
        else:
            add_failure(result, status, nodeid, message)
    if timed_out:
        hung = [nodeid for nodeid in started if nodeid not in outcomes]
        for nodeid in hung or [f"<group {result.name}>"]:
            add_failure(result, "failed", nodeid, timed_out)


def add_failure(result: GroupResult, status: str, nodeid: str, message: str) -> None:
    result.failed += 1
    if status == "error":
        result.errors += 1
    result.failures.append((nodeid, message or "(no message)"))


def group_plan(
    name: str,
    exclusions: list[Deselection],
    postgres_problem: str | None,
    require_postgres: bool,
) -> list[Deselection]:
    deselect = list(exclusions)
    if postgres_problem and not require_postgres:
        reason = f"needs PostgreSQL: {postgres_problem}"
        if name == POSTGRES_GROUP:
            deselect.insert(0, Deselection("*", "needs-postgres", reason))
        else:
            deselect += [Deselection(p, "needs-postgres", reason) for p in NEEDS_POSTGRES]
    return deselect


def run_group(
    name: str,
    scratch: Path,
    deselect: list[Deselection],
    implementation: str,
    options: argparse.Namespace,
) -> GroupResult:
    result = GroupResult(name)
    results_path = scratch / "results" / f"{name}.jsonl"
    plan_path = scratch / "plans" / f"{name}.json"
    plan = {
        "deselect": [vars(entry) for entry in deselect],
        "results": str(results_path),
        "blocked": [] if implementation == REFERENCE else [REFERENCE],
    }
    plan_path.write_text(json.dumps(plan, indent=1), encoding="utf-8")
    rootdir = scratch / SCRATCH_PACKAGE
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-c",
        str(rootdir / "pytest.ini"),
        "--rootdir",
        str(rootdir),
        "-q",
        "-rfEs",
        "--tb=short",
        # A module that fails to import must not stop the others from running.
        "--continue-on-collection-errors",
        *(str(rootdir / path) for path in GROUPS[name]),
        *options.pytest_args,
    ]
    env = {**os.environ, PLAN_ENV: str(plan_path)}
    result.log = scratch / "logs" / f"{name}.log"
    started = time.monotonic()
    return_code = run_pytest(
        command, env, scratch, result.log, options.show_output, options.timeout
    )
    result.seconds = time.monotonic() - started
    timed_out = None if return_code is not None else f"timed out after {options.timeout:g}s"
    tally(result, read_events(results_path), timed_out)
    check_return_code(result, return_code)
    return result


def check_return_code(result: GroupResult, return_code: int | None) -> None:
    """Turn a pytest exit that the recorded outcomes don't explain into a failure."""
    if return_code is None:
        return
    ran = result.passed + result.failed + result.skipped
    if return_code == 5 and not ran and not result.deselected:
        add_failure(result, "error", f"<group {result.name}>", "pytest collected no tests")
    elif return_code not in (0, 5) and not result.failed:
        add_failure(
            result,
            "error",
            f"<group {result.name}>",
            f"pytest exited with code {return_code}",
        )


def mark_not_run(result: GroupResult, reason: str) -> None:
    """A group that could not run without PostgreSQL: its failures become skips."""
    result.not_run_reason = reason
    if result.failed:
        # Modules that failed even to import were not counted as tests; say
        # so, and count each as one skipped entry rather than a failure.
        messages = Counter(message for _, message in result.failures)
        result.notes += [f"{n} module(s) did not collect: {m}" for m, n in messages.items()]
        result.deselected["needs-postgres"] += result.failed
        result.failed = result.errors = 0
        result.failures.clear()


# --------------------------------------------------------------------------
# Reporting


def describe_skips(result: GroupResult) -> str:
    parts = []
    if result.deselected["excluded"]:
        parts.append(f"{result.deselected['excluded']} excluded")
    if result.deselected["needs-postgres"]:
        parts.append(f"{result.deselected['needs-postgres']} need PostgreSQL")
    if result.skipped:
        parts.append(f"{result.skipped} skipped by the tests")
    return f" [{', '.join(parts)}]" if parts else ""


def print_group(result: GroupResult, options: argparse.Namespace) -> None:
    plural = "" if result.errors == 1 else "s"
    errors = f" ({result.errors} error{plural})" if result.errors else ""
    line = (
        f"== {result.name}: {result.passed} passed, {result.failed} failed{errors}, "
        f"{result.total_skipped} skipped{describe_skips(result)} "
        f"in {result.seconds:.1f}s"
    )
    if result.not_run_reason:
        line = f"== {result.name}: SKIPPED, not run: {result.not_run_reason}; " + (
            f"{result.total_skipped} counted as skipped"
        )
    print(line)
    for note in result.notes:
        print(f"   note: {note}")
    reasons = Counter(message for _, message in result.failures)
    for message, count in reasons.most_common(options.reasons):
        print(f"   {count:4d} x {message}")
    if len(reasons) > options.reasons:
        print(f"   ... and {len(reasons) - options.reasons} other reasons")
    if options.failures:
        for nodeid, message in result.failures:
            print(f"   FAILED {nodeid}: {message}")
    for message, count in result.skip_reasons.most_common():
        print(f"   skipped by the tests ({count}): {message}")
    if result.log and (result.failed or options.failures):
        print(f"   log: {result.log}")
    sys.stdout.flush()


def print_summary(results: list[GroupResult]) -> int:
    """Print the table and the closing line; returns the number failed."""
    print("\nconformance summary (excluded and PostgreSQL-less tests count as skipped):")
    for result in results:
        flag = "  (not run: no PostgreSQL)" if result.not_run_reason else ""
        print(f"  {result.name:22s} {result.counts()}{flag}")
    passed = sum(result.passed for result in results)
    failed = sum(result.failed for result in results)
    skipped = sum(result.total_skipped for result in results)
    print(f"{passed} passed, {failed} failed, {skipped} skipped", flush=True)
    return failed


# --------------------------------------------------------------------------
# Command line


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=f"Run the {REFERENCE} {REFERENCE_VERSION} tests against {TARGET}.",
        epilog="Arguments after '--' are passed to every pytest invocation.",
    )
    parser.add_argument(
        "--group",
        action="append",
        choices=list(GROUPS),
        help="run only this group (repeatable)",
    )
    parser.add_argument("--list", action="store_true", help="list the groups and their files")
    parser.add_argument(
        "--reference",
        action="store_true",
        help=f"baseline: run the tests against the unmodified {REFERENCE} {REFERENCE_VERSION}",
    )
    parser.add_argument(
        "--require-postgres",
        action="store_true",
        help="run the PostgreSQL tests even when no server answers (they then fail)",
    )
    parser.add_argument(
        "--no-install",
        action="store_true",
        help="don't pip-install the test dependencies",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=1200,
        help="seconds allowed per group (default 1200)",
    )
    parser.add_argument("--show-output", action="store_true", help="echo pytest's output")
    parser.add_argument(
        "--failures",
        action="store_true",
        help="list every failing test with its reason",
    )
    parser.add_argument(
        "--reasons",
        type=int,
        default=5,
        help="failure reasons shown per group (default 5)",
    )
    parser.add_argument("--scratch", type=Path, help="scratch directory (recreated every run)")
    options, pytest_args = parser.parse_known_args(argv)
    if pytest_args and pytest_args[0] == "--":
        pytest_args = pytest_args[1:]
    elif pytest_args:
        parser.error(f"unrecognized arguments: {' '.join(pytest_args)} (use -- for pytest's)")
    options.pytest_args = pytest_args
    return options


def list_groups() -> None:
    for name, files in GROUPS.items():
        print(f"{name}:")
        for path in files:
            print(f"  {path}")


def needs_postgres_probe(groups: list[str]) -> bool:
    files = {pattern.split("::", 1)[0] for pattern in NEEDS_POSTGRES}
    return POSTGRES_GROUP in groups or any(set(GROUPS[g]) & files for g in groups)


def announce_postgres(problem: str | None, options: argparse.Namespace) -> None:
    settings = postgres_settings()
    hard_coded = {key: POSTGRES_DEFAULTS[key] for key in ("POSTGRES_HOST", "POSTGRES_PORT")}
    if any(settings[key] != value for key, value in hard_coded.items()):
        print(
            "PostgreSQL: warning: the reference tests connect to 127.0.0.1:5432 "
            "whatever POSTGRES_HOST/POSTGRES_PORT say"
        )
    if problem is None:
        print("PostgreSQL: server reachable; PostgreSQL tests will run")
    elif options.require_postgres:
        print(f"PostgreSQL: REQUIRED but {problem}; its tests will run and fail")
    else:
        print(f"PostgreSQL: {problem}")
        print(
            f"PostgreSQL: SKIPPING group {POSTGRES_GROUP} and the PostgreSQL tests of "
            "other groups (counted as skipped)"
        )


def main(argv: list[str]) -> int:
    options = parse_args(argv)
    if options.list:
        list_groups()
        return 0
    groups = options.group or list(GROUPS)
    implementation = REFERENCE if options.reference else TARGET
    try:
        cache = cache_dir()
        scratch = ensure_outside_repo(
            (options.scratch or cache / f"scratch-{implementation}").resolve(),
            "scratch directory",
        )
        print(f"conformance: {REFERENCE} {REFERENCE_VERSION} tests, run against {implementation}")
        sdist = fetch_sdist(cache)
        print(f"sdist: {sdist} (sha256 verified)")
        test_files = prepare_scratch(sdist, scratch, implementation)
        check_assignment(test_files)
        exclusions = load_exclusions(EXCLUSIONS_FILE, test_files)
        if not options.no_install:
            install_test_dependencies()
    except HarnessError as error:
        print(f"conformance: error: {error}", file=sys.stderr)
        return 2
    print(
        f"exclusions: {len(exclusions)} entries in "
        f"{EXCLUSIONS_FILE.relative_to(REPO_ROOT)} "
        "(deselected, counted as skipped)"
    )
    report_imports(implementation, scratch)
    postgres_problem = probe_postgres() if needs_postgres_probe(groups) else None
    if needs_postgres_probe(groups):
        announce_postgres(postgres_problem, options)
    print()
    results = []
    for name in groups:
        deselect = group_plan(name, exclusions, postgres_problem, options.require_postgres)
        result = run_group(name, scratch, deselect, implementation, options)
        if name == POSTGRES_GROUP and postgres_problem and not options.require_postgres:
            mark_not_run(result, postgres_problem)
        print_group(result, options)
        results.append(result)
    return 1 if print_summary(results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

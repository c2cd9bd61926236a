#!/usr/bin/env python3
"""Builds the package and runs the test suite and the conformance suite on
each supported CPython, then prints which versions ran and how each did.

    python3 tests/each_python.py [VERSION ...]     (default: 3.11 3.12 3.13)

Each version gets a virtual environment of its own, ``.venv-X.Y`` (3.11
reuses ``.venv`` when that is a 3.11 one, as the Makefile makes it), with
the dependencies pyproject.toml lists, and a release build of the
extension in ``target/pyX.Y``. On 3.11 the suite runs a second time with
the CPython-internal shortcuts switched off
(EVENTSOURCING_RS_NO_CPYTHON_SHORTCUTS=1), so the fallbacks stay correct.

An interpreter missing from the machine is reported as MISSING and fails
the run (set ALLOW_MISSING_PYTHONS=1 to let it pass with the report).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parent.parent
SUPPORTED = ["3.11", "3.12", "3.13"]
SWITCH = "EVENTSOURCING_RS_NO_CPYTHON_SHORTCUTS"


def find_interpreter(version: str) -> Optional[str]:
    """The CPython X.Y on PATH, else the newest pyenv has."""
    for candidate in [shutil.which(f"python{version}")] + sorted(
        glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}"))
    )[::-1]:
        if not candidate:
            continue
        try:
            out = subprocess.run(
                [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=30,
            )
        except OSError:
            continue
        if out.returncode == 0 and out.stdout.strip() == version:
            return candidate
    return None


def requirements() -> List[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    build = project["build-system"]["requires"]
    meta = project["project"]
    extras = meta["optional-dependencies"]
    return [*build, *meta["dependencies"], *extras["test"], *extras["postgres"]]


def run(command: List[str], env: Optional[Dict[str, str]] = None) -> bool:
    print("+", " ".join(command), flush=True)
    return subprocess.run(command, cwd=ROOT, env=env).returncode == 0


def venv_for(version: str, interpreter: str) -> Optional[Path]:
    """The version's virtual environment, made and filled if need be."""
    default = ROOT / ".venv"
    python = default / "bin" / "python"
    if version == "3.11" and python.exists() and find_version(python) == version:
        venv = default
    else:
        venv = ROOT / f".venv-{version}"
    stamp = venv / ".deps"
    wanted = "\n".join(requirements())
    if not (stamp.exists() and stamp.read_text() == wanted):
        if not (venv / "bin" / "python").exists() and not run(
            [interpreter, "-m", "venv", str(venv)]
        ):
            return None
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        if not run([*pip, "--upgrade", "pip"]) or not run([*pip, *requirements()]):
            return None
        stamp.write_text(wanted)
    return venv


def find_version(python: Path) -> str:
    out = subprocess.run(
        [str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def check(version: str) -> Dict[str, str]:
    """Builds and tests on one version; the outcome of each step."""
    interpreter = find_interpreter(version)
    if interpreter is None:
        return {"interpreter": "MISSING"}
    results: Dict[str, str] = {"interpreter": interpreter}
    venv = venv_for(version, interpreter)
    if venv is None:
        results["setup"] = "FAILED"
        return results
    python = str(venv / "bin" / "python")
    env = dict(
        os.environ, VIRTUAL_ENV=str(venv), CARGO_TARGET_DIR=str(ROOT / f"target/py{version}")
    )
    env.pop(SWITCH, None)
    if not run([str(venv / "bin" / "maturin"), "develop", "--release", "--quiet"], env):
        results["build"] = "FAILED"
        return results
    results["build"] = "ok"
    steps = [("tests", [python, "-m", "pytest", "tests", "-q"], {})]
    if version == SUPPORTED[0]:
        steps.append(
            (
                "tests, shortcuts off",
                # Worker processes do not depend on the shortcuts: run once.
                [python, "-m", "pytest", "tests", "-q", "-m", "not processes"],
                {SWITCH: "1"},
            )
        )
        # Each benchmark once, untimed, so that the suites keep working.
        steps.append(
            (
                "benchmarks (untimed)",
                [python, "-m", "pytest", "benches", "-q", "--benchmark-disable"],
                {},
            )
        )
    steps.append(("conformance", [python, "tests/conformance/run.py", "--require-postgres"], {}))
    for name, command, extra in steps:
        started = time.monotonic()
        ok = run(command, {**env, **extra})
        results[name] = f"{'ok' if ok else 'FAILED'} ({time.monotonic() - started:.0f} s)"
    return results


def main() -> int:
    versions = sys.argv[1:] or SUPPORTED
    outcomes = {}
    for version in versions:
        print(f"\n=== CPython {version} ===", flush=True)
        outcomes[version] = check(version)
    print("\nCPython versions checked:")
    failed = False
    for version, results in outcomes.items():
        for step, outcome in results.items():
            print(f"  {version}  {step:<22} {outcome}")
            if outcome.startswith("FAILED") or (
                outcome == "MISSING" and not os.environ.get("ALLOW_MISSING_PYTHONS")
            ):
                failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Builds the release wheels and the sdist (``make wheels``), shows each
wheel's tags with ``auditwheel show``, and installs each wheel into a
fresh virtual environment of its Python to run the example system on
SQLite files.

    python tests/wheel_smoke.py [VERSION ...]     (default: 3.11 3.12 3.13)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import List

sys.path.insert(0, str(Path(__file__).resolve().parent))

from each_python import SUPPORTED, find_interpreter  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "dist"


def run(command: List[str], cwd: Path = ROOT) -> str:
    print("+", " ".join(command), flush=True)
    out = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{out.stdout}\n{out.stderr}")
    return out.stdout + out.stderr


def main() -> int:
    versions = sys.argv[1:] or SUPPORTED
    interpreters = {}
    for version in versions:
        found = find_interpreter(version)
        if found is None:
            print(f"CPython {version}: MISSING")
            return 1
        interpreters[version] = found
    shutil.rmtree(DIST, ignore_errors=True)
    maturin = [sys.executable, "-m", "maturin"]
    command = [*maturin, "build", "--release", "--sdist", "--out", str(DIST)]
    for found in interpreters.values():
        command += ["--interpreter", found]
    run(command)
    wheels = sorted(DIST.glob("*.whl"))
    sdists = sorted(DIST.glob("*.tar.gz"))
    print("\nBuilt:")
    for path in sdists + wheels:
        print(f"  {path.name}")
    results = []
    for version, found in interpreters.items():
        tag = "cp" + version.replace(".", "")
        wheel = next((w for w in wheels if f"-{tag}-" in w.name), None)
        if wheel is None:
            results.append((version, "no wheel built"))
            continue
        shown = run([sys.executable, "-m", "auditwheel", "show", str(wheel)])
        print(f"\nauditwheel show {wheel.name}:\n{shown.strip()}")
        with tempfile.TemporaryDirectory(prefix="esrs-wheel-") as scratch:
            venv = Path(scratch) / "venv"
            run([found, "-m", "venv", str(venv)])
            python = str(venv / "bin" / "python")
            run([python, "-m", "pip", "install", "--quiet", str(wheel)])
            work = Path(scratch) / "work"
            work.mkdir()
            # Outside the checkout, so the installed package is the one run.
            out = run([python, "-m", "eventsourcing_rs.examples"], cwd=work)
            print(out.strip().splitlines()[-1] if out.strip() else "")
            results.append((version, f"smoke test passed ({wheel.name})"))
    print("\nWheels:")
    for version, outcome in results:
        print(f"  CPython {version}: {outcome}")
    return 0 if all(o.startswith("smoke") for _, o in results) else 1


if __name__ == "__main__":
    sys.exit(main())

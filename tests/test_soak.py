"""The soak's short version: tests/soak.py for 20 seconds, with random
policy failures and a SIGKILL every few seconds; it checks for itself
that nothing was processed twice or lost, and that memory stayed bounded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SOAK = Path(__file__).resolve().parent / "soak.py"


def test_short_soak_with_faults(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            str(SOAK),
            "--seconds",
            "20",
            "--kill-every",
            "4",
            "--failure-rate",
            "0.003",
            "--seed",
            "7",
            "--dir",
            str(tmp_path / "soak"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = out.stdout
    assert out.returncode == 0, report + out.stderr[-3000:]
    lines = dict(line.split(":", 1) for line in report.splitlines() if ":" in line)
    assert lines["duplicates"].split()[0] == "0"
    assert lines["lost"].split()[0] == "0"
    assert int(lines["kills"]) >= 2
    assert int(lines["failures injected"]) >= 1
    assert int(lines["orders placed"]) > 0

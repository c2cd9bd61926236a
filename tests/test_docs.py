"""Every code block of the README and the docs runs: the Python blocks of
each page in order, in one fresh interpreter per page; the shell blocks'
eventsourcing-rs commands are checked against the command line (their
subcommands and options exist). And the site builds."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import List, Tuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
COMMAND = str(Path(sys.executable).parent / "eventsourcing-rs")


def blocks(page: Path, language: str) -> List[str]:
    return [code for lang, code in BLOCK.findall(page.read_text()) if lang == language]


def clean_env() -> dict[str, str]:
    store_keys = ("PERSISTENCE_MODULE", "INFRASTRUCTURE_FACTORY", "SQLITE_DBNAME", "POSTGRES_")
    return {k: v for k, v in os.environ.items() if not any(s in k for s in store_keys)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_python_blocks_run(page: Path, tmp_path: Path) -> None:
    code = blocks(page, "python")
    if not code:
        pytest.skip(f"{page.name} has no Python blocks")
    script = tmp_path / f"{page.stem}_blocks.py"
    script.write_text("\n\n".join(code))
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={**clean_env(), "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{page.name}:\n{done.stdout}\n{done.stderr}"


def commands(page: Path) -> List[Tuple[str, List[str]]]:
    found = []
    for code in blocks(page, "sh") + blocks(page, "bash") + blocks(page, ""):
        for line in code.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("eventsourcing-rs "):
                found.append((line, shlex.split(line)[1:]))
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_command_lines_name_real_commands_and_options(page: Path) -> None:
    lines = commands(page)
    if not lines:
        pytest.skip(f"{page.name} has no eventsourcing-rs command lines")
    for line, args in lines:
        done = subprocess.run(
            [COMMAND, *args, "--help"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, f"{line!r}: {done.stderr}"


def test_the_site_builds(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "site" / "index.html").exists()

"""The ``eventsourcing-rs`` command line."""

from __future__ import annotations

import importlib
import json
import logging
import os
import signal
import sys
import threading
from typing import Annotated, Any, List, Optional

import typer

from eventsourcing_rs.system import System
from eventsourcing_rs.utils import resolve_topic

app = typer.Typer(
    help="Run event-sourced systems written with eventsourcing_rs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _commands() -> None:
    """Run event-sourced systems written with eventsourcing_rs."""


class UsageProblem(Exception):
    """Something a user of the command got wrong: said in one line."""


def load_system(target: str) -> System:
    """The System named by ``MODULE:ATTR`` (ATTR may be dotted)."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise UsageProblem(f"'{target}' is not MODULE:ATTR (for example 'myapp.system:system')")
    # As uvicorn and gunicorn do: modules in the current directory import.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and module_name.startswith(error.name):
            raise UsageProblem(
                f"cannot import module '{module_name}' (is it on PYTHONPATH?)"
            ) from error
        raise
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as error:
            raise UsageProblem(f"module '{module_name}' has no attribute '{attr}'") from error
    if not isinstance(obj, System):
        raise UsageProblem(f"'{target}' is not an eventsourcing_rs System: it is {obj!r}")
    return obj


def system_from_topology(topology: str) -> System:
    """A System from the JSON that :class:`MultiProcessRunner` passes its
    workers: the applications' topics and the edges between them."""
    data = json.loads(topology)
    nodes = {name: resolve_topic(topic) for name, topic in data["nodes"].items()}
    pipes: List[List[Any]] = [
        [nodes[leader], nodes[follower]] for leader, follower in data["edges"]
    ]
    pipes.extend([cls] for cls in nodes.values())
    return System(pipes=pipes)


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s",
    )


def _fail(error: BaseException, debug: bool) -> None:
    if debug:
        raise error
    typer.echo(f"eventsourcing-rs: error: {error}", err=True)
    raise typer.Exit(code=2 if isinstance(error, UsageProblem) else 1)


@app.command()
def worker(
    target: Annotated[
        Optional[str],
        typer.Argument(
            metavar="MODULE:ATTR", help="The System object, e.g. 'myapp.system:system'."
        ),
    ] = None,
    apps: Annotated[
        Optional[List[str]],
        typer.Argument(metavar="APP...", help="Names of the system's applications to run here."),
    ] = None,
    topology: Annotated[Optional[str], typer.Option(hidden=True)] = None,
    log_level: Annotated[
        str, typer.Option(help="Logging level of the worker's log on stderr.")
    ] = "INFO",
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
) -> None:
    """Run the named followers of a system in this process until SIGINT or
    SIGTERM, then commit the current batch and exit 0.

    Configured by the environment only (the store's variables and
    WORKER_LEASE_SECONDS, WORKER_POLL_SECONDS, WORKER_NOTIFY,
    WORKER_MAX_BACKOFF_SECONDS). Start one per application on each host,
    under whatever supervises processes there: a second worker for the same
    follower waits as a hot standby and takes over when the first dies.
    """
    from eventsourcing_rs.worker import Worker

    _configure_logging(log_level)
    names = list(apps or [])
    try:
        if topology is not None:
            if target is not None:
                names.insert(0, target)
            system = system_from_topology(topology)
        elif target is None:
            raise UsageProblem("missing MODULE:ATTR naming the System")
        else:
            system = load_system(target)
        if not names:
            raise UsageProblem(
                f"name at least one application to run (the system has "
                f"{', '.join(sorted(system.nodes))})"
            )
        try:
            running = Worker(system, names)
        except ValueError as error:
            raise UsageProblem(str(error)) from error
    except Exception as error:
        _fail(error, debug)
        return
    stopping = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    running.start()
    while not stopping.wait(0.2):
        if all(not loop.is_alive() for loop in running.loops):
            break
    running.stop()
    errors = running.errors
    if errors:
        _fail(errors[0], debug)


def main() -> None:
    app()


if __name__ == "__main__":
    main()

"""The ``eventsourcing-rs`` command line."""

from __future__ import annotations

import importlib
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any, Dict, List, Mapping, Optional

import typer

from eventsourcing_rs.application import AggregateNotFound, Application
from eventsourcing_rs.persistence import PersistenceError
from eventsourcing_rs.system import System
from eventsourcing_rs.utils import resolve_topic

_log = logging.getLogger("eventsourcing_rs")

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
    # One line, whatever the message (libpq's end with a hint on another).
    said = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    typer.echo(f"eventsourcing-rs: error: {said}", err=True)
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
    parent_pid: Annotated[Optional[int], typer.Option(hidden=True)] = None,
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

    # First: a SIGTERM from a supervisor while the system is imported must
    # not kill the worker before it can stop cleanly.
    stopping = _stop_on_signals()
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
    running.start()
    while not stopping.wait(0.2):
        # A follower that died (not one retrying) ends the worker, so that
        # its supervisor sees it and starts it again.
        if any(loop.error is not None or not loop.is_alive() for loop in running.loops):
            break
        if parent_pid is not None and os.getppid() != parent_pid:
            # Started by a MultiProcessRunner whose process has gone.
            _log.warning("The runner's process %d has gone: stopping", parent_pid)
            break
    running.stop()
    errors = running.errors
    if errors:
        _fail(errors[0], debug)


STORES = ("environment", "memory", "sqlite", "postgres")
RUNNERS = ("single", "multi", "processes")


def store_environment(system: System, store: str, sqlite_dir: Optional[Path]) -> Dict[str, str]:
    """The environment for ``--store``: the caller's, with the store's
    module chosen (and, for SQLite, a file per application in
    ``sqlite_dir``)."""
    env = dict(os.environ)
    if store not in STORES:
        raise UsageProblem(f"unknown store '{store}' (choose from {', '.join(STORES)})")
    if store == "memory":
        env["PERSISTENCE_MODULE"] = "eventsourcing_rs.popo"
    elif store == "postgres":
        env["PERSISTENCE_MODULE"] = "eventsourcing_rs.postgres"
    elif store == "sqlite":
        if sqlite_dir is None:
            raise UsageProblem("--store sqlite needs --sqlite-dir DIR (a file per application)")
        sqlite_dir.mkdir(parents=True, exist_ok=True)
        env["PERSISTENCE_MODULE"] = "eventsourcing_rs.sqlite"
        for name in system.nodes:
            env[f"{name.upper()}_SQLITE_DBNAME"] = str(sqlite_dir / f"{name.lower()}.db")
    return env


def open_applications(system: System, env: Mapping[str, str]) -> Dict[str, Application]:
    """An instance of each application of the system, on its store, for
    reading (none of them processes anything)."""
    apps: Dict[str, Application] = {}
    for name in system.nodes:
        cls = system.leader_cls(name) if name in system.leads else system.get_app_cls(name)
        try:
            apps[name] = cls(env=env)
        except (PersistenceError, EnvironmentError) as error:
            raise StoreProblem(f"cannot open the store of application '{name}': {error}") from error
    return apps


class StoreProblem(Exception):
    """A store that cannot be opened: said in one line."""


@app.command()
def run(
    target: Annotated[str, typer.Argument(metavar="MODULE:ATTR", help="The System object.")],
    runner: Annotated[
        str, typer.Option(help="single, multi (threads) or processes (a worker per follower).")
    ] = "multi",
    store: Annotated[
        str,
        typer.Option(
            help="environment (PERSISTENCE_MODULE and its variables), memory, sqlite or postgres."
        ),
    ] = "environment",
    sqlite_dir: Annotated[
        Optional[Path], typer.Option(help="With --store sqlite: where each application's file is.")
    ] = None,
    log_level: Annotated[str, typer.Option(help="Logging level of the log on stderr.")] = "INFO",
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
) -> None:
    """Run a system until Ctrl-C or SIGTERM, then stop it cleanly and exit 0.

    Each follower catches up on what its leaders recorded while it was not
    running, then processes new events as they are recorded (by this
    process's applications or, with a shared store, by other processes).
    """
    from eventsourcing_rs.system import (
        MultiProcessRunner,
        MultiThreadedRunner,
        SingleThreadedRunner,
    )

    stopping = _stop_on_signals()
    _configure_logging(log_level)
    try:
        if runner not in RUNNERS:
            raise UsageProblem(f"unknown runner '{runner}' (choose from {', '.join(RUNNERS)})")
        system = load_system(target)
        env = store_environment(system, store, sqlite_dir)
        if runner == "processes":
            running: Any = MultiProcessRunner(system, env=env)
        else:
            # These runners' applications read os.environ, as in 9.1.
            os.environ.clear()
            os.environ.update(env)
            running = (SingleThreadedRunner if runner == "single" else MultiThreadedRunner)(system)
        try:
            running.start()
        except (PersistenceError, EnvironmentError) as error:
            raise StoreProblem(f"cannot start the system: {error}") from error
    except Exception as error:
        _fail(error, debug)
        return
    _log.info("Running %s with the %s runner; Ctrl-C stops it", target, runner)
    while not stopping.wait(0.2):
        if getattr(running, "errors", None):
            break
    try:
        running.stop()
    except Exception as error:
        _fail(error, debug)
    _log.info("Stopped")


@app.command()
def status(
    target: Annotated[str, typer.Argument(metavar="MODULE:ATTR", help="The System object.")],
    store: Annotated[
        str, typer.Option(help="environment, memory, sqlite or postgres (as for run).")
    ] = "environment",
    sqlite_dir: Annotated[Optional[Path], typer.Option(help="With --store sqlite.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON, for scripts.")] = False,
    watch: Annotated[
        bool, typer.Option("--watch", help="Redraw with progress bars until Ctrl-C.")
    ] = False,
    interval: Annotated[float, typer.Option(help="Seconds between looks.")] = 1.0,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
) -> None:
    """Show, for each leader -> follower edge, the leader's last
    notification id, the follower's position, the lag in events and an
    estimate of the seconds to catch up (from the rate over INTERVAL)."""
    from eventsourcing_rs.status import edge_lags

    try:
        system = load_system(target)
        env = store_environment(system, store, sqlite_dir)
        apps = open_applications(system, env)

        def look() -> Any:
            try:
                return edge_lags(system.edges, apps)
            except PersistenceError as error:
                raise StoreProblem(f"cannot read the system's positions: {error}") from error

        if watch:
            _watch(look, interval)
            return
        first = look()
        time.sleep(min(interval, 5.0))
        rows = _with_rates(first, look(), min(interval, 5.0))
    except Exception as error:
        _fail(error, debug)
        return
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        _print_table(rows)


@app.command("dead-letters")
def dead_letters(
    target: Annotated[str, typer.Argument(metavar="MODULE:ATTR", help="The System object.")],
    follower: Annotated[str, typer.Argument(help="The follower whose parked letters to show.")],
    retry: Annotated[
        Optional[str], typer.Option(help="Process this parked letter again (its id).")
    ] = None,
    discard: Annotated[
        Optional[str], typer.Option(help="Give this parked letter up (its id).")
    ] = None,
    store: Annotated[
        str, typer.Option(help="environment, memory, sqlite or postgres (as for run).")
    ] = "environment",
    sqlite_dir: Annotated[Optional[Path], typer.Option(help="With --store sqlite.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON, for scripts.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
) -> None:
    """List a follower's parked (dead) letters, or retry or discard one.

    A letter is retried by running the follower's policy again on its
    notification, recording what it saves with the letter marked retried in
    one transaction; an aggregate's letters are retried oldest first.
    """
    from uuid import UUID

    from eventsourcing_rs.dead_letters import DeadLetters

    try:
        system = load_system(target)
        if follower not in system.follows:
            raise UsageProblem(
                f"'{follower}' is not a follower of the system (its followers: "
                f"{', '.join(sorted(system.follows))})"
            )
        env = store_environment(system, store, sqlite_dir)
        apps = open_applications(system, env)
        letters = DeadLetters(
            apps[follower], {name: apps[name] for name in system.follows[follower]}
        )
        for option, value in (("--retry", retry), ("--discard", discard)):
            if value is not None:
                try:
                    letter_id = UUID(value)
                except ValueError:
                    raise UsageProblem(f"{option} {value!r} is not a letter's id") from None
                try:
                    (letters.retry if option == "--retry" else letters.discard)(letter_id)
                except (ValueError, AggregateNotFound) as error:
                    raise UsageProblem(f"{option} {value}: {error}") from error
                typer.echo(f"{option[2:]} {letter_id}: done")
                return
        rows = [
            {
                "id": str(letter.id),
                "leader": letter.leader_name,
                "notification_id": letter.notification_id,
                "aggregate_id": letter.aggregate_id,
                "error": letter.error,
            }
            for letter in letters.list()
        ]
    except Exception as error:
        _fail(error, debug)
        return
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Dead letters of {follower}")
    for column in ("id", "leader", "notification", "aggregate", "error"):
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row[key]) for key in row))
    Console().print(table)


def _with_rates(before: List[Any], after: List[Any], seconds: float) -> List[Dict[str, Any]]:
    rows = []
    # By edge (and segment): the rows may change between two looks, when
    # workers start a follower in segments.
    earlier = {(e.leader_name, e.follower_name, e.segment): e for e in before}
    for new in after:
        old = earlier.get((new.leader_name, new.follower_name, new.segment), new)
        rate = max(0.0, (new.follower_position - old.follower_position) / seconds)
        if new.lag == 0:
            eta: Optional[float] = 0.0
        elif rate > 0:
            eta = round(new.lag / rate, 1)
        else:
            eta = None
        rows.append({**new.as_dict(), "rate_per_second": round(rate, 1), "eta_seconds": eta})
    return rows


def _print_table(rows: List[Dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Followers")
    columns = ("leader", "follower", "leader's last id", "position", "lag", "rate/s", "eta")
    for column in (*columns, "owner"):
        table.add_column(
            column, justify="left" if column in ("leader", "follower", "owner") else "right"
        )
    for row in rows:
        eta = row["eta_seconds"]
        segment = f" {row['segment']}" if row.get("segment") else ""
        table.add_row(
            row["leader_name"],
            row["follower_name"] + segment,
            str(row["leader_last_id"]),
            str(row["follower_position"]),
            str(row["lag"]),
            f"{row['rate_per_second']:.1f}",
            "-" if eta is None else f"{eta:.1f} s",
            row.get("owner") or "-",
        )
    Console().print(table)


def _watch(look: Any, interval: float) -> None:
    from rich.live import Live
    from rich.progress import BarColumn, Progress, TextColumn

    stopping = _stop_on_signals()
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:>8.0f}/{task.total:<8.0f} lag {task.fields[lag]}"),
        TextColumn("{task.fields[eta]}"),
    )
    tasks: Dict[tuple[str, str, Optional[str]], Any] = {}
    previous = None
    with Live(progress, refresh_per_second=4):
        while True:
            lags = look()
            rows = _with_rates(previous, lags, interval) if previous else None
            for i, edge in enumerate(lags):
                key = (edge.leader_name, edge.follower_name, edge.segment)
                eta = ""
                if rows is not None:
                    seconds = rows[i]["eta_seconds"]
                    eta = (
                        "caught up"
                        if edge.lag == 0
                        else ("eta -" if seconds is None else f"eta {seconds:.1f} s")
                    )
                fields = dict(
                    total=max(edge.leader_last_id, 1),
                    completed=edge.follower_position,
                    lag=edge.lag,
                    eta=eta,
                )
                if key not in tasks:
                    segment = f" {edge.segment}" if edge.segment else ""
                    tasks[key] = progress.add_task(
                        f"{edge.leader_name} -> {edge.follower_name}{segment}", **fields
                    )
                else:
                    progress.update(tasks[key], **fields)
            previous = lags
            if stopping.wait(interval):
                return


def _stop_on_signals() -> threading.Event:
    stopping = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stopping


def main() -> None:
    app()


if __name__ == "__main__":
    main()

"""MultiProcessRunner: each follower of a system in its own OS process."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import IO, Any, Dict, List, Mapping, Optional, Type, TypeVar

from eventsourcing_rs.application import Application
from eventsourcing_rs.system import Runner, System, _raise_first
from eventsourcing_rs.worker import WorkerSettings, enable_notify

_log = logging.getLogger("eventsourcing_rs")

A = TypeVar("A")

# How long stop() waits for a worker to commit its batch and exit after
# SIGTERM before it kills it.
STOP_TIMEOUT = 60.0


class WorkerExited(Exception):
    """A worker process of a :class:`MultiProcessRunner` ended while the
    runner was running (or did not end cleanly when stopped)."""

    def __init__(self, application_name: str, returncode: int, last_error: str):
        self.application_name = application_name
        self.returncode = returncode
        self.last_error = last_error
        how = (
            f"was killed by signal {-returncode}"
            if returncode < 0
            else f"exited with status {returncode}"
        )
        said = f"; its last error: {last_error}" if last_error else ""
        super().__init__(f"The worker process of '{application_name}' {how}{said}")


@dataclass
class _WorkerProcess:
    name: str
    process: subprocess.Popen[bytes]
    log: IO[bytes]
    reported: bool = False

    def last_error(self) -> str:
        """The last error line the worker logged, if any."""
        try:
            with open(self.log.name, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except (OSError, ValueError):
            return ""
        for line in reversed(lines):
            if " ERROR " in line or " CRITICAL " in line or line.startswith("eventsourcing-rs:"):
                return line.strip()
        return lines[-1].strip() if lines else ""


def unshared_store(app: Application) -> Optional[str]:
    """Says which store ``app`` uses, if processes cannot share it."""
    recorder = app.recorder
    datastore = getattr(recorder, "datastore", None)
    if datastore is None:
        return f"the in-memory store ({type(recorder).__name__})"
    if getattr(datastore, "is_sqlite_memory_mode", False):
        return f"an in-memory SQLite database ({datastore.db_name!r})"
    return None


class MultiProcessRunner(Runner):
    """Runs each follower of the system in its own OS process (a worker:
    see :mod:`eventsourcing_rs.worker`), started afresh with the Python
    that runs this one, the caller's environment (updated with ``env``)
    and its ``sys.path``.

    :func:`get` returns an instance in this process bound to the same store,
    for issuing commands to leaders and reading any application's
    repository. The store must be one that processes share: PostgreSQL, or
    SQLite files on this machine.

    A worker that dies is reported in :attr:`errors` (its exit status and
    its last logged error), and :func:`stop` raises the first such error
    after stopping the others.
    """

    def __init__(self, system: System, env: Optional[Mapping[str, str]] = None):
        super().__init__(system)
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.apps: Dict[str, Application] = {}
        self.workers: Dict[str, _WorkerProcess] = {}
        self._errors: List[Exception] = []
        self._stopping = threading.Event()
        self._report = threading.Lock()
        self._monitor: Optional[threading.Thread] = None

    def start(self) -> None:
        super().start()
        system = self.system
        for name in system.nodes:
            cls = system.leader_cls(name) if name in system.leads else system.get_app_cls(name)
            app = cls(env=self.env)
            store = unshared_store(app)
            if store is not None:
                raise TypeError(
                    f"MultiProcessRunner cannot run application '{name}': it uses {store}, "
                    "which other processes cannot open. Use PostgreSQL, or SQLite files."
                )
            if name in system.leads:
                enable_notify(app, WorkerSettings.from_factory(app.factory))
            self.apps[name] = app
        topology = json.dumps({"nodes": system.nodes, "edges": sorted(system.edges)})
        child_env = dict(self.env)
        # The caller's import path, as multiprocessing's spawn passes it, so
        # the workers import the system's classes as the caller does.
        child_env["PYTHONPATH"] = os.pathsep.join(p or os.getcwd() for p in sys.path)
        for name in system.followers:
            log = tempfile.NamedTemporaryFile(prefix=f"esrs-worker-{name}-", suffix=".log")
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "eventsourcing_rs.cli",
                    "worker",
                    "--topology",
                    topology,
                    "--parent-pid",
                    str(os.getpid()),
                    name,
                ],
                env=child_env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
            self.workers[name] = _WorkerProcess(name, process, log)
        self._monitor = threading.Thread(target=self._watch, name="worker-monitor", daemon=True)
        self._monitor.start()
        self._log_started()

    def _watch(self) -> None:
        while not self._stopping.wait(0.2):
            for worker in list(self.workers.values()):
                code = worker.process.poll()
                with self._report:
                    if code is None or worker.reported or self._stopping.is_set():
                        continue
                    worker.reported = True
                    error = WorkerExited(worker.name, code, worker.last_error())
                    self._errors.append(error)
                _log.error("%s", error)

    @property
    def pids(self) -> Dict[str, int]:
        """Each follower's worker process id."""
        return {name: w.process.pid for name, w in self.workers.items()}

    @property
    def errors(self) -> List[Exception]:
        """Workers that ended while the runner ran, as :class:`WorkerExited`."""
        return list(self._errors)

    def stop(self) -> None:
        """Asks every worker to stop (SIGTERM: each commits its current
        batch and exits 0), waits for them, and raises the first error."""
        with self._report:
            self._stopping.set()
        for worker in self.workers.values():
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for worker in self.workers.values():
            try:
                code = worker.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.process.kill()
                code = worker.process.wait()
            # SIGTERM before the worker's handler was installed (it was
            # still starting) ends it by default: nothing was running.
            if code not in (0, -signal.SIGTERM) and not worker.reported:
                worker.reported = True
                self._errors.append(WorkerExited(worker.name, code, worker.last_error()))
            worker.log.close()
        if self._monitor is not None:
            self._monitor.join()
        _log.info("MultiProcessRunner stopped")
        _raise_first(self._errors)

    def get(self, cls: Type[A]) -> A:
        app = self.apps[cls.__name__]
        assert isinstance(app, cls)
        return app

    def __enter__(self) -> MultiProcessRunner:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

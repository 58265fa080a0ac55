"""The project's run: one at a time per server, a named terminal of the server's terminal
manager, so it is a process of the server (its namespace, its cgroup, a terminal's
environment with ``PORT``), on a pty, shared by every viewer through terminado's own
websocket, as JupyterLab's terminals are.

The terminal's process is the run's root (``reaper.py``), which runs the command and
collects every process the run starts, so Stop finds them all (``processes.py``).

terminado drops a terminal whose process ended; the run keeps its own record (exit code,
the end of its output), so the Run panel can still show a crashed run's last words.
"""

import asyncio
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from traitlets import Float, Int
from traitlets.config import LoggingConfigurable

from codepilot_contracts.run import CRASHED, RUNNING, STARTING, STOPPED

from .. import upstream
from ..appport import PortProbe
from ..terminalsocket import viewer_backlog
from .command import CommandProblem, NoCommand, RunCommand, expanded_env, find_run_command
from .processes import descendants, end_descendants
from .scrollback import BoundedScrollback, plain_tail

# The run's terminal, as JupyterLab's Running panel and the terminals API name it.
RUN_TERMINAL = "run"


# The run's root process, run by path: no import of this package, whatever the run's
# PYTHONPATH says.
REAPER = Path(__file__).with_name("reaper.py")


def run_argv(command: str) -> list[str]:
    """The command line as a shell runs it, so ``$PORT``, ``&&`` and quotes work, below
    the run's root."""
    shell = [shutil.which("bash") or "/bin/sh", "-c", command]
    return [sys.executable, "-I", "-S", str(REAPER), *shell]


def isoformat(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


@dataclass
class RunRecord:
    """One run, from Run to its end."""

    number: int
    command: RunCommand
    terminal: object  # terminado's PtyWithClients
    scrollback: BoundedScrollback
    pid: int
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    started_clock: float = field(default_factory=time.monotonic)
    ended: datetime | None = None
    exit_code: int | None = None
    signal: int | None = None
    stopped: bool = False  # ended by Stop (or Restart), not on its own
    tail: str | None = None  # the end of its output, once it ended

    @property
    def alive(self) -> bool:
        return self.ended is None


def ended_state(record: RunRecord) -> str:
    """Stopped for a run stopped by hand or one that finished well; Crashed otherwise."""
    if record.stopped or record.exit_code == 0:
        return STOPPED
    return CRASHED


def state_label(state: str, record: RunRecord | None) -> str:
    """What the status bar says: ``Running``, ``Crashed (exit 1)``, ``Crashed (signal 9)``."""
    label = state.capitalize()
    if state == CRASHED and record is not None:
        if record.exit_code is not None:
            return f"{label} (exit {record.exit_code})"
        if record.signal is not None:
            return f"{label} (signal {record.signal})"
    return label


class ProjectRun(LoggingConfigurable):
    """Starts, stops and describes the project's run."""

    scrollback_chars = Int(
        1_000_000,
        help="""Characters of a run's most recent output the server keeps: sent to a viewer
        who opens the Run panel late, and kept after the run ended. A run that prints more
        (50 MB of logs) costs no more memory.""",
    ).tag(config=True)

    tail_lines = Int(
        200,
        help="Lines of an ended run's output that the Run panel shows after a reload.",
    ).tag(config=True)

    stop_timeout = Float(
        3.0,
        help="""Seconds Stop waits after SIGTERM for the run's processes to end before it
        sends SIGKILL to those left.""",
    ).tag(config=True)

    starting_seconds = Float(
        5.0,
        help="""Seconds a run counts as Starting while nothing listens on the app's port;
        after that it is Running even if it never listens (a console program).""",
    ).tag(config=True)

    def __init__(self, terminals, root_dir: str, port: int, **kwargs):
        """``terminals``: returns the server's terminal manager (None when terminals are
        disabled); ``port``: the app's port, where the preview looks."""
        super().__init__(**kwargs)
        self._terminals = terminals
        self.root = Path(root_dir)
        self.port = port
        # A probe per run: an answer about the last run's app is not one about this run.
        self.probe = PortProbe(port)
        self.record: RunRecord | None = None
        self.problem: CommandProblem | None = None
        self._lock = asyncio.Lock()
        self._runs = 0

    # --- reading the state ---------------------------------------------------------------

    def process_ids(self) -> set[int]:
        """The live run's processes: its root and every descendant, wherever they moved
        (blocking: reads /proc); the ports they listen on are the app's when ``PORT`` is
        not (``listeningports``)."""
        record = self.record
        if record is None or not record.alive:
            return set()
        return {record.pid, *descendants(record.pid)}

    def _notice_end(self) -> None:
        """Record the run's end once terminado has dropped its terminal (its pty closed,
        the process reaped: the exit status is known)."""
        record = self.record
        if record is None or not record.alive:
            return
        manager = self._terminals()
        if (
            manager is not None
            and upstream.named_terminal(manager, RUN_TERMINAL) is record.terminal
        ):
            return
        record.exit_code, record.signal = upstream.terminal_exit_status(record.terminal)
        record.ended = datetime.now(UTC)
        record.tail = plain_tail(record.scrollback.text(), self.tail_lines)
        self.log.info(
            "Code Pilot: run %d ended (%s)", record.number, state_label(ended_state(record), record)
        )

    async def state(self) -> str:
        self._notice_end()
        record = self.record
        if record is None:
            return STOPPED
        if not record.alive:
            return ended_state(record)
        if await self.probe.listening():
            return RUNNING
        if time.monotonic() - record.started_clock < self.starting_seconds:
            return STARTING
        return RUNNING

    async def model(self) -> dict:
        """The run as ``GET codepilot/api/run`` answers it."""
        state = await self.state()
        record = self.record
        listening = state == RUNNING and await self.probe.listening()
        alive = record is not None and record.alive
        found = find_run_command(self.root)
        model = {
            "state": state,
            "label": state_label(state, record),
            "run": None,
            "terminal": RUN_TERMINAL if alive else None,
            "port": self.port,
            "listening_port": self.port if listening else None,
            "problem": self.problem.to_json() if self.problem else None,
            "viewers": [
                viewer_backlog(websocket)
                for websocket in (upstream.terminal_viewers(record.terminal) if alive else ())
            ],
            "next": {"kind": kind_of(found), **found.to_json()},
        }
        if record is not None:
            model["run"] = {
                "number": record.number,
                **record.command.to_json(),
                "pid": record.pid,
                "started": isoformat(record.started),
                "ended": isoformat(record.ended),
                "exit_code": record.exit_code,
                "signal": record.signal,
                "tail": record.tail,
            }
        # The flat fields the issue names, for scripts and the class page.
        run = model["run"] or {}
        for key in ("command", "pid", "exit_code", "started"):
            model[key] = run.get(key)
        return model

    # --- Run, Stop, Restart -----------------------------------------------------------------

    async def start(self, restart: bool = False) -> None:
        """Start the run command, unless a run is alive (Run pressed twice is one run);
        ``restart`` stops the live one first."""
        async with self._lock:
            self._notice_end()
            if self.record is not None and self.record.alive:
                if not restart:
                    return
                await self._stop(self.record)
            self._start()

    async def stop(self) -> None:
        async with self._lock:
            self._notice_end()
            if self.record is not None and self.record.alive:
                await self._stop(self.record)

    async def stop_with_server(self) -> None:
        """End the run's processes as the server stops: terminado's own cleanup signals
        only the run's first process, and a job that ignores SIGHUP would outlive the
        server (and hold the app's port). Never raises: the server's cleanup goes on."""
        try:
            await self.stop()
        except Exception:
            self.log.exception("Code Pilot: the run could not be stopped with the server")

    def _start(self) -> None:
        manager = self._terminals()
        if manager is None:
            self.problem = CommandProblem("", None, "terminals are disabled on this server")
            return
        found = find_run_command(self.root)
        if isinstance(found, NoCommand):
            self.problem = CommandProblem("", None, found.message)
            return
        if isinstance(found, CommandProblem):
            self.problem = found
            return
        cwd = self.root / found.cwd
        if not cwd.is_dir():
            self.problem = CommandProblem(
                "codepilot.toml", None, f"cwd {found.cwd!r} is not a folder of the project"
            )
            return
        if upstream.named_terminal(manager, RUN_TERMINAL) is not None:
            # A terminal of that name not ours (opened through the terminals API).
            self.problem = CommandProblem(
                "", None, f"a terminal named {RUN_TERMINAL!r} is open: close it to run"
            )
            return
        self.problem = None
        scrollback = BoundedScrollback(self.scrollback_chars)
        terminal = upstream.start_named_terminal(
            manager,
            RUN_TERMINAL,
            run_argv(found.command),
            str(cwd),
            expanded_env(found.env, os.environ),
            scrollback,
        )
        self._runs += 1
        self.probe = PortProbe(self.port)
        self.record = RunRecord(
            self._runs, found, terminal, scrollback, upstream.terminal_pid(terminal)
        )
        self.log.info("Code Pilot: run %d: %s (pid %d)", self._runs, found.command, self.record.pid)

    async def _stop(self, record: RunRecord) -> None:
        record.stopped = True
        killed = await end_descendants(record.pid, self.stop_timeout)
        if killed:
            self.log.warning("Code Pilot: run %d: SIGKILL to %s", record.number, killed)
        # terminado notices the closed pty on its next read: wait for it, briefly.
        for _ in range(100):
            self._notice_end()
            if not record.alive:
                return
            await asyncio.sleep(0.02)


def kind_of(found) -> str:
    if isinstance(found, RunCommand):
        return "command"
    if isinstance(found, CommandProblem):
        return "problem"
    return "missing"

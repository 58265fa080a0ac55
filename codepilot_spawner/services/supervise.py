"""``python -m codepilot_spawner.services.supervise --listen HOST:PORT ... -- MODULE ARGS``: keep a
Python service running, its sockets open while it restarts.

JupyterHub notices a managed service that died only at its next poll (30 s), and
restarts it then; previews would be down all that time. The supervisor is what the hub
runs instead. It binds the service's listening sockets itself and hands them on
(``inherited_sockets``), so a browser that connects while the service restarts waits in
the listen backlog instead of being refused. It imports the service's code once
(``--preload``) and forks each run from itself, so a run starts in a fraction of the
second an interpreter takes to import JupyterHub and aiohttp.

SIGTERM or SIGINT (the hub stopping its services, ``make down``) ends the service and
then the supervisor; so does the end of the hub that started it.
"""

import argparse
import contextlib
import importlib
import logging
import os
import runpy
import select
import signal
import socket
import sys
import time
import traceback

from .servicelife import end_with_hub

# Descriptors of the listening sockets, comma-separated, in ``--listen`` order.
LISTEN_FDS_VARIABLE = "CODEPILOT_LISTEN_FDS"
# A service that keeps failing is started again after a pause that doubles up to this.
MAX_PAUSE = 10.0
# A run this long counts as healthy: the next failure restarts at once again.
HEALTHY_RUN = 30.0
# Seconds the service gets between SIGTERM and SIGKILL when the supervisor stops;
# below stop-all's grace for the supervisor itself (5 s).
STOP_GRACE = 3.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

log = logging.getLogger("codepilot.supervise")


def listening_socket(address: str) -> socket.socket:
    """A socket listening on ``host:port`` (``[v6]:port`` for IPv6), to be inherited."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, int(port)))
    sock.listen(1024)
    return sock


def inherited_sockets() -> list[socket.socket] | None:
    """In a supervised service: its listening sockets, in ``--listen`` order; None when
    it runs on its own (and binds its ports itself)."""
    fds = os.environ.get(LISTEN_FDS_VARIABLE)
    if not fds:
        return None
    return [socket.socket(fileno=int(fd)) for fd in fds.split(",")]


def next_pause(pause: float, ran_for: float) -> float:
    """Seconds to wait before the next start: none after a healthy run, else doubling."""
    if ran_for >= HEALTHY_RUN:
        return 0.0
    return min(MAX_PAUSE, max(0.25, pause * 2))


class Supervisor:
    """Runs ``python -m <module> <args>`` as a forked child, again whenever it ends."""

    def __init__(self, module: str, args: list[str], sockets: list[socket.socket]):
        self.module = module
        self.args = args
        self.sockets = sockets
        self.stopping = False
        # Signals wake the waits below through this pipe (the handlers only set a flag).
        self._wake_read, wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._wake_write = wake_write

    def run(self) -> int:
        """Until told to stop; the service's last exit status."""
        signal.set_wakeup_fd(self._wake_write)
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._stop_soon)
        end_with_hub(log, "Supervisor")
        pause, status = 0.0, 0
        while not self.stopping:
            started = time.monotonic()
            pid = self._start()
            status = self._wait(pid)
            if self.stopping:
                break
            pause = next_pause(pause, time.monotonic() - started)
            log.warning("%s ended (%s); starting it again in %.2f s", self.module, status, pause)
            self._sleep(pause)
        return status

    def _stop_soon(self, signum, frame) -> None:
        self.stopping = True

    def _start(self) -> int:
        pid = os.fork()
        if pid == 0:
            self._become_service()  # never returns
        return pid

    def _become_service(self) -> None:
        status = 1
        try:
            signal.set_wakeup_fd(-1)
            for signum in STOP_SIGNALS:
                signal.signal(signum, signal.SIG_DFL)
            os.close(self._wake_read)
            os.close(self._wake_write)
            os.environ[LISTEN_FDS_VARIABLE] = ",".join(str(s.fileno()) for s in self.sockets)
            sys.argv = [self.module, *self.args]
            runpy.run_module(self.module, run_name="__main__", alter_sys=True)
            status = 0
        except SystemExit as exit:
            status = exit.code if isinstance(exit.code, int) else 1
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)

    def _wait(self, pid: int) -> int:
        """The child's exit status; on a stop, SIGTERM it, SIGKILL after the grace."""
        pidfd = os.pidfd_open(pid)
        try:
            deadline = None
            while True:
                if self.stopping and deadline is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGTERM)
                    deadline = time.monotonic() + STOP_GRACE
                timeout = None if deadline is None else max(0, deadline - time.monotonic())
                ready, _, _ = select.select([pidfd, self._wake_read], [], [], timeout)
                if pidfd in ready:
                    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
                if self._wake_read in ready:
                    self._drain_wake_pipe()
                elif deadline is not None:  # the grace is over
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        finally:
            os.close(pidfd)

    def _sleep(self, seconds: float) -> None:
        if seconds > 0 and not self.stopping:
            select.select([self._wake_read], [], [], seconds)

    def _drain_wake_pipe(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_read, 512):
                pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m codepilot_spawner.services.supervise")
    parser.add_argument(
        "--listen", action="append", default=[], metavar="HOST:PORT", help="a socket to hold"
    )
    parser.add_argument(
        "--preload",
        action="append",
        default=[],
        metavar="MODULE",
        help="a module to import once, before the first start",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- MODULE ARGS")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no module to supervise (put it and its arguments after --)")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("[%(levelname)1.1s %(asctime)s supervise] %(message)s"))
    log.addHandler(handler)  # its own lines only, not those of what it preloads
    log.setLevel(logging.INFO)
    try:
        sockets = [listening_socket(address) for address in args.listen]
    except OSError as error:
        log.error("Cannot listen: %s", error)
        return 1
    for module in args.preload:
        importlib.import_module(module)
    return Supervisor(command[0], command[1:], sockets).run()


if __name__ == "__main__":
    sys.exit(main())

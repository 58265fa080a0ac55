"""The root process of a run: ``python -I -S reaper.py COMMAND...`` runs COMMAND as its
child and lives until every process the run started has ended, however it left.

Stop must end every process of the run. A session or a process group does not hold
them: a daemonizing server, ``setsid`` or a double fork leaves both. A cgroup would, but
the server's user owns no cgroup to divide on one machine (cgroup v1 here; v2 only with
delegation) nor in a pod. A child subreaper needs no privilege and works in all three:
with ``PR_SET_CHILD_SUBREAPER`` (Linux 3.4) an orphan below this process is re-parented
to it, not to init, so the run's processes are exactly this process's descendants
(``processes.descendants``), wherever they moved, for as long as it lives. It lives
until it has no child left; it holds the run's pty open till then, so the terminal (and
the run's Running state) lasts as long as any process of the run does.

It exits as COMMAND did (its code, or its signal); SIGTERM to it is SIGTERM to COMMAND.
Standard library only, and started with ``-I -S``: it starts in milliseconds, whatever
the run's environment says.
"""

import contextlib
import ctypes
import os
import resource
import signal
import sys

PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>
# Keys typed into the run's terminal (Ctrl-C, Ctrl-\) and its hangup reach the whole
# foreground process group: the command handles them; the root stays to collect orphans.
TERMINAL_SIGNALS = (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP)
# What Python ignores at start-up and a command expects at its default (``yes | head``).
PYTHON_IGNORES = (signal.SIGPIPE, signal.SIGXFSZ)


def become_subreaper() -> bool:
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


class Run:
    """The command's pid and wait status, and whether SIGTERM came: the root's SIGTERM is
    the command's (Stop sends it to both), and one that comes before the command started
    means it never starts."""

    def __init__(self):
        self.command: int | None = None
        self.status: int | None = None
        self.stopping = False
        signal.signal(signal.SIGTERM, self.on_sigterm)

    def on_sigterm(self, signum, frame):
        self.stopping = True
        if self.command is not None and self.status is None:  # the pid is still its own
            # Reaped already if the signal came as ``os.wait`` returned it.
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.command, signum)

    def start(self, argv: list[str]) -> None:
        # SIGTERM waits while it forks: the child takes it at its default, the parent
        # once it knows the child's pid.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        if self.stopping:
            return
        pid = os.fork()
        if pid == 0:
            for signum in (signal.SIGTERM, *TERMINAL_SIGNALS, *PYTHON_IGNORES):
                signal.signal(signum, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
            try:
                os.execvp(argv[0], argv)
            except OSError as error:
                print(f"{argv[0]}: {error.strerror}", file=sys.stderr)
            os._exit(127)
        self.command = pid
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})

    def wait_for_all(self) -> None:
        """Reap every child, the command and adopted orphans alike, until none is left."""
        while True:
            try:
                pid, wait_status = os.wait()
            except ChildProcessError:
                return
            if pid == self.command:
                self.status = wait_status


def exit_as(status: int | None) -> None:
    if status is not None and os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        if signum not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(signum, signal.SIG_DFL)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # the command's crash, not ours
        os.kill(os.getpid(), signum)
        os._exit(128 + signum)
    os._exit(os.waitstatus_to_exitcode(status) if status is not None else 0)


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit("usage: reaper.py COMMAND [ARG...]")
    become_subreaper()
    for signum in TERMINAL_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    run = Run()
    run.start(argv)
    run.wait_for_all()
    exit_as(run.status)


if __name__ == "__main__":
    main(sys.argv[1:])

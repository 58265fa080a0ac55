"""How a hub-managed service of ours lives: it logs to a file of its own, and ends when its
hub says so, or when its hub is gone.

JupyterHub ends its managed services when it stops. A hub that is killed (SIGKILL, OOM,
a crash) cannot: its services would run on, holding their ports, and the restarted hub's
own services could not listen. So each service also watches its hub, named by the
hub's pid in its environment (``with_hub_pid``; the parent pid is no proof: a service
orphaned while it was still importing has already been adopted), and stops when that
process has ended.
"""

import asyncio
import os
import select
import signal
import threading
from pathlib import Path

HUB_PID_VARIABLE = "CODEPILOT_HUB_PID"


def with_hub_pid(services: list[dict], hub_pid: int) -> list[dict]:
    """The hub's managed services (those with a command), told which process is their hub."""
    return [
        {
            **service,
            "environment": {**service.get("environment", {}), HUB_PID_VARIABLE: str(hub_pid)},
        }
        if service.get("command")
        else service
        for service in services
    ]


def logged(command: list[str], log_file: Path, stdout: bool = True) -> list[str]:
    """``command``, run with its stderr (and ``stdout``) appended to ``log_file``: a shell
    that redirects, then execs it, so the process keeps the pid its parent knows."""
    redirect = '>>"$0" 2>&1' if stdout else '2>>"$0"'
    return ["/bin/sh", "-c", f'exec "$@" {redirect}', str(log_file), *command]


def with_log_files(services: list[dict], logs_dir: Path) -> list[dict]:
    """The hub's managed services, each logging to ``<logs_dir>/<service name>.log``."""
    return [
        {**service, "command": logged(service["command"], logs_dir / f"{service['name']}.log")}
        if service.get("command")
        else service
        for service in services
    ]


def end_with_hub(log, name: str) -> None:
    """Send this process SIGTERM, on which every service of ours stops, once the hub that
    started it has ended: a thread waits on the hub's pidfd (readable when it ends)."""
    hub_pid = int(os.environ.get(HUB_PID_VARIABLE) or os.getppid())
    try:
        hub = os.pidfd_open(hub_pid)
    except ProcessLookupError:
        hub = None  # it has ended already

    def wait_for_hub():
        if hub is not None:
            select.select([hub], [], [])
        log.warning("%s: the hub (pid %s) is gone; stopping", name, hub_pid)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=wait_for_hub, name="end-with-hub", daemon=True).start()


async def until_stopped(log, name: str) -> None:
    """Return on SIGTERM or SIGINT, or once the hub that started this process has ended."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    end_with_hub(log, name)
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)

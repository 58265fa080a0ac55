"""How a hub-managed service of ours ends: when its hub says so, or when its hub is gone.

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


def _open_hub() -> tuple[int | None, int]:
    """(a pidfd of the hub, its pid); no pidfd when the hub has already ended."""
    hub_pid = int(os.environ.get(HUB_PID_VARIABLE) or os.getppid())
    try:
        return os.pidfd_open(hub_pid), hub_pid
    except ProcessLookupError:
        return None, hub_pid


async def until_stopped(log, name: str) -> None:
    """Return on SIGTERM or SIGINT, or once the hub that started this process has ended."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # A pidfd becomes readable when its process ends: no polling.
    hub, hub_pid = _open_hub()

    def hub_gone():
        log.warning("%s: the hub (pid %s) is gone; stopping", name, hub_pid)
        stop.set()

    if hub is None:
        hub_gone()
    else:
        loop.add_reader(hub, hub_gone)
    try:
        await stop.wait()
    finally:
        if hub is not None:
            loop.remove_reader(hub)
            os.close(hub)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def end_with_hub() -> None:
    """For a service whose event loop is not ours: SIGTERM to this process when the hub
    that started it ends, from a thread that waits on the hub's pidfd."""
    hub, _ = _open_hub()
    if hub is None:
        os.kill(os.getpid(), signal.SIGTERM)
        return

    def wait_for_hub():
        select.select([hub], [], [])
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=wait_for_hub, name="end-with-hub", daemon=True).start()

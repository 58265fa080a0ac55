"""How a hub-managed service of ours ends: when its hub says so, or when its hub is gone.

JupyterHub ends its managed services when it stops. A hub that is killed (SIGKILL, OOM,
a crash) cannot: its services would run on, holding their ports, and the restarted hub's
own services could not listen. So each service also watches the process that started
it, the hub, and stops when that process has ended.
"""

import asyncio
import os
import signal


async def until_stopped(log, name: str) -> None:
    """Return on SIGTERM or SIGINT, or once the hub that started this process has ended."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    hub_pid = os.getppid()
    # A pidfd becomes readable when its process ends: no polling.
    hub = os.pidfd_open(hub_pid)

    def hub_gone():
        log.warning("%s: the hub (pid %s) is gone; stopping", name, hub_pid)
        stop.set()

    loop.add_reader(hub, hub_gone)
    if os.getppid() != hub_pid:  # it ended before the pidfd was open
        hub_gone()
    try:
        await stop.wait()
    finally:
        loop.remove_reader(hub)
        os.close(hub)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)

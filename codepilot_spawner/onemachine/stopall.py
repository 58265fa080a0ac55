"""Stop everything one one-machine hub started: the documented end of all its servers.

Servers outlive the hub (``cleanup_servers = False``), so this is the one way to end them
all: stop the hub if it runs and whatever it started that outlived it (the proxy, the
fork server, its services), then, for every server in the hub's database, end its
processes and remove its namespace and cgroup; then sweep what carries the hub's key
(a server whose start was cut short) and remove the hub's firewall table.
"""

import asyncio
import contextlib
import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from ..upstream_api.jupyterhub import state_pid, stored_spawner_states
from . import netns
from .cgroups import HUBS_PARENT, ServerCgroup, hub_cgroups, machine_hierarchy
from .processes import Process, children, tagged_pids, terminate
from .sandbox import Sandbox

log = logging.getLogger("codepilot.stop-all")


HUB_DATABASE = "jupyterhub.sqlite"
HUB_PID_FILE = "jupyterhub.pid"
PROXY_PID_FILE = "jupyterhub-proxy.pid"


def from_pid_file(path: Path, program: bytes) -> Process | None:
    """The live process named in ``path`` when its command line mentions ``program``."""
    try:
        process = Process.read(int(path.read_text().strip()))
    except (OSError, ValueError):
        return None
    if process is None or program not in process.command_line():
        return None
    return process


def running_hub(data_dir: Path) -> Process | None:
    """The hub running on ``data_dir``, found by its pid file."""
    return from_pid_file(data_dir / HUB_PID_FILE, b"jupyterhub")


def leftover_proxy(data_dir: Path) -> Process | None:
    """The proxy the hub of ``data_dir`` started, when it runs on (the hub was killed)."""
    return from_pid_file(data_dir / PROXY_PID_FILE, b"configurable-http-proxy")


@dataclass
class StopReport:
    hub: bool = False
    hub_processes: int = 0  # the proxy, the fork server, the hub's services
    servers: int = 0
    leftovers: int = 0

    def __str__(self) -> str:
        if not (self.hub or self.hub_processes or self.servers or self.leftovers):
            return "nothing was running"
        parts = []
        if self.hub:
            parts.append("the hub")
        if self.hub_processes:
            parts.append(f"{self.hub_processes} of its processes (proxy, fork server, services)")
        parts.append(f"{self.servers} server{'s' if self.servers != 1 else ''}")
        if self.leftovers:
            parts.append(f"{self.leftovers} leftover objects")
        return "stopped " + ", ".join(parts)


async def stop_everything(data_dir: Path, grace: float = 10.0) -> StopReport:
    """Stop the hub of ``data_dir``, the processes it started and all its servers.

    Servers get ``grace`` seconds after SIGTERM, all at once: enough for a stopping
    server's bounded push to S3 (``c.CodePilot.sync_flush_timeout`` and its margin)."""
    report = StopReport()
    states = await asyncio.to_thread(stored_spawner_states, data_dir / HUB_DATABASE)
    server_pids = {state_pid(state) for state in states}
    hub = await asyncio.to_thread(running_hub, data_dir)
    # The hub's own processes, listed while it runs: once it is gone they are orphans.
    parts = [] if hub is None else await asyncio.to_thread(children, hub)
    parts = [process for process in parts if process.pid not in server_pids]
    proxy = await asyncio.to_thread(leftover_proxy, data_dir)
    if proxy and proxy not in parts:
        parts.append(proxy)  # a proxy left by a hub that was killed
    # All at once: JupyterHub would stop its services one by one, each given 10 s to
    # answer SIGINT; it keeps the servers.
    alive = await terminate([*([hub] if hub else []), *parts], grace=5)
    report.hub = hub is not None
    report.hub_processes = alive - report.hub
    stopped = await asyncio.gather(*(stop_server(state, grace) for state in states))
    report.servers = sum(stopped)
    report.leftovers = await sweep(netns.hub_key(str(data_dir)))
    return report


async def stop_server(state: dict, grace: float) -> bool:
    """End one server from its stored state; whether anything of it was still there."""
    sandbox = Sandbox.from_state(state)
    pid = state_pid(state)
    running = (
        bool(pid) and (Process.read(pid) is not None) and (sandbox is None or sandbox.owns(pid))
    )
    if running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    if sandbox is None:
        return running
    running = running or bool(await asyncio.to_thread(tagged_pids, sandbox.process_tag))
    if sandbox.network and not running:
        running = await asyncio.to_thread(os.path.exists, sandbox.network.path)
    await sandbox.remove(grace, log)
    return running


async def sweep(hub: str) -> int:
    """Remove every namespace, link, cgroup and slot claim named for ``hub``, and its
    firewall table: what a start cut short by a crash of the hub may have left. Only a
    hub that is root makes them, and only root can remove them."""
    if os.geteuid() != 0:
        return 0
    removed = 0
    hierarchy = await asyncio.to_thread(machine_hierarchy)
    if hierarchy:
        for path in hub_cgroups(hierarchy, f"{HUBS_PARENT}/{hub}"):
            cgroup = ServerCgroup(hierarchy, path)
            await asyncio.to_thread(cgroup.kill_all)
            await asyncio.to_thread(cgroup.remove)
            removed += 1
    names = netns.hub_namespaces(hub)
    links = await asyncio.to_thread(netns.hub_links, hub)
    if names or links:
        batch = "".join(f"link del {link}\n" for link in links)
        batch += "".join(f"netns del {name}\n" for name in names)
        with contextlib.suppress(netns.NetworkError):
            await netns.run(["ip", "-force", "-batch", "-"], batch)
        removed += len(names) + len(links)
    for claim in netns.hub_claims(hub):
        claim.unlink(missing_ok=True)
        removed += 1
    with contextlib.suppress(netns.NetworkError, FileNotFoundError):
        await netns.remove_hub_rules(hub)
    if hierarchy:
        await asyncio.to_thread(remove_hub_cgroup, hierarchy, hub)
    return removed


def remove_hub_cgroup(hierarchy, hub: str) -> None:
    """The hub's group in each tree, and ``HUBS_PARENT`` too once no other hub's is in it."""
    for root in set(hierarchy.roots.values()):
        for group in (Path(root, HUBS_PARENT, hub), Path(root, HUBS_PARENT)):
            with contextlib.suppress(OSError):  # busy: another hub's groups are in it
                group.rmdir()

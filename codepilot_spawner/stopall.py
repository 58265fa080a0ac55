"""Stop everything one one-machine hub started: the documented end of all its servers.

Servers outlive the hub (``cleanup_servers = False``), so this is the one way to end them
all: stop the hub if it runs, then, for every server in the hub's database, end its
processes and remove its namespace and cgroup; then sweep what carries the hub's key
(a server whose start was cut short) and remove the hub's firewall table.
"""

import asyncio
import contextlib
import json
import logging
import os
import signal
import sqlite3
import time
from pathlib import Path

from . import netns
from .cgroups import ServerCgroup, hub_cgroups, machine_hierarchy
from .sandbox import Sandbox

log = logging.getLogger("codepilot.stop-all")


def spawner_states(database: Path) -> list[dict]:
    """The spawner states the hub's database keeps (read-only)."""
    if not database.exists():
        return []
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        rows = connection.execute("SELECT state FROM spawners").fetchall()
    finally:
        connection.close()
    states = []
    for (raw,) in rows:
        with contextlib.suppress(TypeError, ValueError):
            state = json.loads(raw) if isinstance(raw, str | bytes) else raw
            if isinstance(state, dict) and state:
                states.append(state)
    return states


def stop_process(pid_file: Path, timeout: float = 30.0) -> bool:
    """SIGTERM the process in ``pid_file`` and wait for it; True if one was running."""
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return True


async def stop_everything(data_dir: Path, grace: float = 5.0) -> str:
    """Stop the hub of ``data_dir`` and all its servers; returns a one-line summary."""
    hub_stopped = await asyncio.to_thread(stop_process, data_dir / "jupyterhub.pid")
    states = await asyncio.to_thread(spawner_states, data_dir / "jupyterhub.sqlite")
    servers = 0
    for state in states:
        sandbox = Sandbox.from_state(state)
        pid = state.get("pid")
        if pid and (sandbox is None or sandbox.owns(pid)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        if sandbox:
            await sandbox.remove(grace, log)
            servers += 1
    swept = await sweep(netns.hub_key(str(data_dir)))
    hub = "the hub and " if hub_stopped else ""
    return f"{hub}{servers} servers ({swept} leftover objects removed)"


async def sweep(hub: str) -> int:
    """Remove every namespace, link, cgroup and slot claim named for ``hub``, and its
    firewall table: what a start cut short by a crash of the hub may have left."""
    removed = 0
    hierarchy = await asyncio.to_thread(machine_hierarchy)
    if hierarchy:
        for path in hub_cgroups(hierarchy, f"codepilot/{hub}"):
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
    if os.geteuid() == 0:
        with contextlib.suppress(netns.NetworkError, FileNotFoundError):
            await netns.remove_hub_rules(hub)
    if hierarchy:
        await asyncio.to_thread(remove_hub_cgroup, hierarchy, hub)
    return removed


def remove_hub_cgroup(hierarchy, hub: str) -> None:
    for root in set(hierarchy.roots.values()):
        with contextlib.suppress(OSError):
            Path(root, "codepilot", hub).rmdir()

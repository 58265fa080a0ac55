"""What surrounds one running server, as a pod surrounds its container, and its removal.

A ``Sandbox`` is the server's process tag, plus, when the hub is root, its network
namespace and its cgroup. It is kept in the spawner's state, so a restarted hub (or the
"stop everything" command) can still find and remove every part of it.
"""

import asyncio
from dataclasses import dataclass, field

from codepilot_contracts.env import carries_process_tag
from codepilot_contracts.namespaces import SandboxEntry

from .cgroups import ServerCgroup
from .netns import ServerNetwork, remove_namespace
from .processes import end_processes, end_tagged_processes


@dataclass(eq=False)
class Sandbox:
    process_tag: str
    network: ServerNetwork | None = None
    cgroup: ServerCgroup | None = None
    _removal: asyncio.Future | None = field(default=None, repr=False)

    @property
    def netns(self) -> str:
        return self.network.path if self.network else ""

    def to_state(self) -> dict:
        # The namespace's path is the preview route's (``netns``); ``network`` rebuilds it.
        state = {"process_tag": self.process_tag}
        if self.network:
            state["network"] = self.network.to_state()
        if self.cgroup:
            state["cgroup"] = self.cgroup.to_state()
        return state

    @classmethod
    def from_state(cls, state: dict) -> "Sandbox | None":
        if not state.get("process_tag"):
            return None
        network = ServerNetwork.from_state(state["network"]) if state.get("network") else None
        cgroup = ServerCgroup.from_state(state["cgroup"]) if state.get("cgroup") else None
        return cls(state["process_tag"], network, cgroup)

    def owns(self, pid: int) -> bool:
        """Whether ``pid`` is still this server's process (pids get reused)."""
        return carries_process_tag(pid, self.process_tag)

    def entry(self, private_mounts: bool, tmp_dir: str = "") -> SandboxEntry:
        """How a process of this server gets in (``SandboxEntry.enter``, as root)."""
        return SandboxEntry(
            procs_files=tuple(str(path) for path in self.cgroup.procs_files) if self.cgroup else (),
            netns=self.netns,
            private_mounts=private_mounts,
            tmp_dir=tmp_dir,
        )

    async def remove(self, grace: float, log) -> None:
        """End every process, then remove namespace and cgroup; once, however often asked."""
        if self._removal is None:
            self._removal = asyncio.ensure_future(self._remove(grace, log))
        await asyncio.shield(self._removal)

    async def _remove(self, grace: float, log) -> None:
        # The cgroup lists the server's processes (none can leave it); without one, the tag
        # does, at the price of reading every process's environment in /proc, each 0.1 s
        # of the grace: a class's stops at once then held the hub's event loop.
        if self.cgroup:
            killed = await end_processes(self.cgroup.pids, grace)
        else:
            killed = await end_tagged_processes(self.process_tag, grace)
        if killed:
            log.info("Killed %d processes that ignored SIGTERM", len(killed))
        if self.cgroup:
            # What the tag misses: a process that cleared its environment.
            await asyncio.to_thread(self.cgroup.kill_all)
        if self.network:
            await remove_namespace(self.network)
        if self.cgroup:
            await asyncio.to_thread(self.cgroup.remove)

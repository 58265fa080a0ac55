"""Memory, CPU and process-count limits per user server, with the kernel's cgroups.

cgroup v2 when the machine has it (one tree at /sys/fs/cgroup with memory, cpu and pids),
otherwise the v1 controllers, each in its own tree. A server's group is
``codepilot/<hub>/<server>`` in every tree it uses. The server's process joins it before
it drops root, so every process it starts is counted there and none can leave.

Pure functions find the trees and say what to write; ``ServerCgroup`` writes it.
"""

import contextlib
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

CONTROLLERS = ("memory", "cpu", "pids")
# Under it each hub keeps ``<hub key>/<server>`` groups (``cgroup_parent``); `make down`
# removes a hub's groups and, once no other hub's are in it, this group too.
HUBS_PARENT = "codepilot"
CPU_PERIOD_US = 100_000

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_SAFE_PATH = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")


class CgroupError(RuntimeError):
    """The machine's cgroups cannot give the limits asked for."""


def parse_memory(text: str) -> int:
    """``"2G"``, ``"512M"``, ``"1.5GiB"``, ``"1048576"`` -> bytes (powers of 1024)."""
    match = _SIZE.match(str(text))
    if not match:
        raise ValueError(f"not a memory size: {text!r} (use e.g. 512M or 2G)")
    number, unit, _ = match.groups()
    value = int(float(number) * 1024 ** "bkmgt".index((unit or "b").lower()))
    if value < 16 * 1024 * 1024:
        raise ValueError(f"memory limit {text!r} is below 16M: no server starts in that")
    return value


@dataclass(frozen=True)
class Limits:
    memory_bytes: int | None = None
    cpus: float | None = None
    pids: int | None = None

    def __post_init__(self):
        if self.cpus is not None and self.cpus <= 0:
            raise ValueError(f"CPU limit must be above 0, not {self.cpus}")
        if self.pids is not None and self.pids < 16:
            raise ValueError(f"process limit must be at least 16, not {self.pids}")


@dataclass(frozen=True)
class Hierarchy:
    """Where the controllers are: one v2 root, or a v1 mount point per controller."""

    version: int
    roots: dict  # controller -> mount point (v2: the same root for each)


def find_hierarchy(mounts: str) -> Hierarchy | None:
    """The cgroup trees in ``/proc/self/mounts`` text that hold memory, cpu and pids."""
    v1, v2 = {}, []
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        mount_point, fstype, options = fields[1], fields[2], fields[3].split(",")
        if fstype == "cgroup2":
            v2.append(mount_point)
        elif fstype == "cgroup":
            for controller in CONTROLLERS:
                if controller in options:
                    v1[controller] = mount_point
    for root in v2:
        try:
            available = Path(root, "cgroup.controllers").read_text().split()
        except OSError:
            continue
        if all(controller in available for controller in CONTROLLERS):
            return Hierarchy(2, {controller: root for controller in CONTROLLERS})
    if all(controller in v1 for controller in CONTROLLERS):
        return Hierarchy(1, v1)
    return None


def machine_hierarchy() -> Hierarchy | None:
    return find_hierarchy(Path("/proc/self/mounts").read_text())


def limit_files(version: int, limits: Limits) -> list[tuple[str, str, str]]:
    """``(controller, file, value)`` to write for ``limits``."""
    writes = []
    if version == 2:
        if limits.memory_bytes is not None:
            writes += [
                ("memory", "memory.max", str(limits.memory_bytes)),
                ("memory", "memory.swap.max", "0"),
                # Over the limit, the whole server goes, not one process picked in it.
                ("memory", "memory.oom.group", "1"),
            ]
        if limits.cpus is not None:
            quota = max(1000, round(limits.cpus * CPU_PERIOD_US))
            writes.append(("cpu", "cpu.max", f"{quota} {CPU_PERIOD_US}"))
        if limits.pids is not None:
            writes.append(("pids", "pids.max", str(limits.pids)))
        return writes
    if limits.memory_bytes is not None:
        writes += [
            ("memory", "memory.limit_in_bytes", str(limits.memory_bytes)),
            # Written only where swap accounting exists (see ServerCgroup.create).
            ("memory", "memory.memsw.limit_in_bytes", str(limits.memory_bytes)),
        ]
    if limits.cpus is not None:
        quota = max(1000, round(limits.cpus * CPU_PERIOD_US))
        writes += [
            ("cpu", "cpu.cfs_period_us", str(CPU_PERIOD_US)),
            ("cpu", "cpu.cfs_quota_us", str(quota)),
        ]
    if limits.pids is not None:
        writes.append(("pids", "pids.max", str(limits.pids)))
    return writes


def oom_kills(text: str) -> int:
    """The ``oom_kill`` count in v2 ``memory.events`` or v1 ``memory.oom_control`` text."""
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill":
            return int(value)
    return 0


def describe_memory(size: int) -> str:
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2)):
        if size >= factor:
            return f"{size / factor:g} {unit}"
    return f"{size} bytes"


@dataclass(frozen=True)
class ServerCgroup:
    """One server's group, in each tree of the hierarchy."""

    hierarchy: Hierarchy
    path: str  # relative: codepilot/<hub>/<server>

    def __post_init__(self):
        if not _SAFE_PATH.match(self.path) or ".." in self.path.split("/"):
            raise ValueError(f"unsafe cgroup path {self.path!r}")

    @property
    def directories(self) -> list[Path]:
        """One directory per tree (v2: one)."""
        roots = dict.fromkeys(self.hierarchy.roots.values())
        return [Path(root, self.path) for root in roots]

    def directory(self, controller: str) -> Path:
        return Path(self.hierarchy.roots[controller], self.path)

    @property
    def procs_files(self) -> list[str]:
        """What a process writes its pid to, to join (safe to use after fork)."""
        return [str(directory / "cgroup.procs") for directory in self.directories]

    def to_state(self) -> dict:
        return {"version": self.hierarchy.version, "roots": self.hierarchy.roots, "path": self.path}

    @classmethod
    def from_state(cls, state: dict) -> "ServerCgroup":
        return cls(Hierarchy(int(state["version"]), dict(state["roots"])), state["path"])

    # --- blocking file work: call it in a thread ----------------------------------------

    def create(self, limits: Limits) -> None:
        if self.hierarchy.version == 2:
            self._enable_v2_controllers()
        for directory in self.directories:
            directory.mkdir(parents=True, exist_ok=True)
        for controller, name, value in limit_files(self.hierarchy.version, limits):
            target = self.directory(controller) / name
            if name == "memory.memsw.limit_in_bytes" and not target.exists():
                continue  # the kernel has no swap accounting: there is no swap to limit
            target.write_text(value)

    def _enable_v2_controllers(self) -> None:
        # Each parent hands memory, cpu and pids down to its children.
        root = Path(self.hierarchy.roots["memory"])
        wanted = " ".join(f"+{controller}" for controller in CONTROLLERS)
        parent = root
        for part in self.path.split("/")[:-1]:
            (parent / "cgroup.subtree_control").write_text(wanted)
            parent = parent / part
            parent.mkdir(exist_ok=True)
        (parent / "cgroup.subtree_control").write_text(wanted)

    def pids(self) -> list[int]:
        found = set()
        for directory in self.directories:
            try:
                found.update(int(pid) for pid in (directory / "cgroup.procs").read_text().split())
            except FileNotFoundError:
                continue
        return sorted(found)

    def oom_kills(self) -> int:
        name = "memory.events" if self.hierarchy.version == 2 else "memory.oom_control"
        try:
            return oom_kills((self.directory("memory") / name).read_text())
        except FileNotFoundError:
            return 0

    def count(self, controller: str, name: str) -> str:
        return (self.directory(controller) / name).read_text().strip()

    def kill_all(self, timeout: float = 10.0) -> list[int]:
        """SIGKILL every process in the group until none is left; returns those killed."""
        kill_file = self.directory("memory") / "cgroup.kill"
        if self.hierarchy.version == 2 and kill_file.exists():
            with contextlib.suppress(FileNotFoundError):
                kill_file.write_text("1")
        else:
            # No new process can start while we kill (a fork bomb would outrun us).
            with contextlib.suppress(FileNotFoundError):
                (self.directory("pids") / "pids.max").write_text("0")
        killed = set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = self.pids()
            if not pids:
                return sorted(killed)
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            time.sleep(0.02)
        raise CgroupError(f"processes left in {self.path} after {timeout}s: {self.pids()}")

    def remove(self, timeout: float = 5.0) -> None:
        """Remove the group's directories (they empty as their processes are reaped)."""
        deadline = time.monotonic() + timeout
        for directory in self.directories:
            while True:
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # EBUSY while exiting processes are still in it
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)


def hub_cgroups(hierarchy: Hierarchy, parent: str) -> list[str]:
    """Relative paths of the server groups under ``parent`` (``codepilot/<hub>``)."""
    found = set()
    for root in set(hierarchy.roots.values()):
        with contextlib.suppress(FileNotFoundError):
            for entry in Path(root, parent).iterdir():
                if entry.is_dir():
                    found.add(f"{parent}/{entry.name}")
    return sorted(found)

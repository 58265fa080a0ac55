"""Processes as /proc shows them."""

import os
from pathlib import Path


def alive(pid: int) -> bool:
    """Whether ``pid`` is a living process (a zombie has ended)."""
    try:
        with open(f"/proc/{pid}/stat") as stream:
            return stream.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def pids_with_command_line(*argv: str) -> list[int]:
    """The living processes whose command line is exactly ``argv``."""
    wanted = "\0".join(argv).encode() + b"\0"
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"{entry.path}/cmdline", "rb") as stream:
                if stream.read() != wanted:
                    continue
        except OSError:
            continue
        if alive(int(entry.name)):
            found.append(int(entry.name))
    return found


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def stat_fields(pid: int) -> list[str]:
    """``/proc/<pid>/stat`` after the command name: ``[0]`` the state, ``[1]`` the parent,
    ``[11:13]`` user and system ticks, ``[13:15]`` those of children waited for."""
    with open(f"/proc/{pid}/stat") as stream:
        return stream.read().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User and system CPU time ``pid`` has used."""
    fields = stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def cpu_seconds_of(pids, with_reaped_children: bool = False) -> float:
    """CPU time of ``pids`` (those that ended are skipped), and with
    ``with_reaped_children`` that of their children that ended and were waited for (the
    hub's ``ip`` and ``nft`` runs)."""
    upto = 15 if with_reaped_children else 13
    total = 0
    for pid in pids:
        try:
            total += sum(int(value) for value in stat_fields(pid)[11:upto])
        except OSError:
            continue
    return total / CLOCK_TICKS


def process_tree(root: int) -> set[int]:
    """``root`` and every process descended from it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                children.setdefault(int(stat_fields(int(entry))[1]), []).append(int(entry))
            except OSError:
                continue
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        tree.add(pid)
        todo.extend(children.get(pid, []))
    return tree


def command_line(pid: int) -> bytes:
    """The process's argv joined by NULs; empty once it has ended."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def memory_kb(pid: int) -> dict:
    """``{"rss": ..., "pss": ...}`` in KB, from ``/proc/<pid>/smaps_rollup``."""
    values = {}
    with open(f"/proc/{pid}/smaps_rollup") as stream:
        for line in stream:
            name, _, rest = line.partition(":")
            if name in ("Rss", "Pss"):
                values[name.lower()] = int(rest.split()[0])
    return values


def gateway_pid(hub) -> int:
    """This hub's preview gateway (named by its port), from /proc: the child of the
    supervisor the hub runs, forked with the supervisor's command line."""
    option = f"--PreviewGatewayApp.port={hub.preview_port}".encode()
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0") if entry.name.isdigit() else []
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            parent_argv = Path(f"/proc/{parent}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if option in argv and argv == parent_argv:
            return int(entry.name)
    raise AssertionError("the preview gateway's process was not found")

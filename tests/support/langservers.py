"""The editor's language servers as /proc shows them: which run for a Unix user, and what
memory they hold."""

import os
from dataclasses import dataclass

# What identifies each language server's processes in their command line.
MARKERS = {"pylsp": "-m\0pylsp", "typescript-language-server": "typescript-language-server"}


@dataclass(frozen=True)
class LanguageServerProcess:
    pid: int
    ppid: int
    name: str  # a key of MARKERS; tsserver, its child, counts as typescript-language-server


def _read(pid: int, name: str) -> bytes:
    with open(f"/proc/{pid}/{name}", "rb") as stream:
        return stream.read()


def _status_field(pid: int, field: str) -> str:
    for line in _read(pid, "status").decode().splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1].split()[0]
    raise KeyError(field)


def language_server_processes(uid: int) -> list[LanguageServerProcess]:
    """The language servers (and tsserver, typescript-language-server's own child) that
    run as ``uid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            if int(_status_field(pid, "Uid")) != uid:
                continue
            command = _read(pid, "cmdline").decode(errors="replace")
            ppid = int(_status_field(pid, "PPid"))
        except (FileNotFoundError, ProcessLookupError, KeyError):
            continue
        for name, marker in MARKERS.items():
            if marker in command or (name != "pylsp" and "tsserver" in command):
                found.append(LanguageServerProcess(pid, ppid, name))
                break
    return found


def pss_kib(pid: int) -> int:
    """Proportional set size of a process, in KiB (``smaps_rollup``)."""
    for line in _read(pid, "smaps_rollup").decode().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    raise KeyError("Pss")


def cgroup(pid: int) -> str:
    return _read(pid, "cgroup").decode()


def net_namespace(pid: int) -> int:
    return os.stat(f"/proc/{pid}/ns/net").st_ino

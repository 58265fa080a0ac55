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


def cpu_seconds(pid: int) -> float:
    """User and system CPU time ``pid`` has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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

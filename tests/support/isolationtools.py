"""Looking at a server's sandbox from outside: its namespace, cgroup and what it leaves.

``connect_in_namespace`` does what the preview gateway does: setns() into the server's
network namespace (in a thread of its own) and connect to 127.0.0.1 there.
"""

import contextlib
import os
import signal
import socket
import subprocess
import threading
from pathlib import Path

from codepilot_contracts.namespaces import enter_network_namespace
from codepilot_spawner.onemachine.processes import tagged_pids


def connect_in_namespace(netns: str, port: int, request: bytes = b"", timeout=5.0) -> bytes:
    """Connect to 127.0.0.1:<port> inside ``netns``; send ``request``, return the reply."""
    result = {}

    def run():
        try:
            enter_network_namespace(netns)  # this thread only
            with socket.create_connection(("127.0.0.1", port), timeout) as connection:
                connection.sendall(request)
                chunks = []
                while data := connection.recv(65536):
                    chunks.append(data)
            result["reply"] = b"".join(chunks)
        except Exception as error:
            result["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["reply"]


def http_get_in_namespace(netns: str, port: int = 3000, path: str = "/") -> str:
    request = f"GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode()
    return connect_in_namespace(netns, port, request).decode(errors="replace")


def namespace_inode(path: str) -> int:
    return os.stat(path).st_ino


def process_namespace_inode(pid: int) -> int:
    return os.stat(f"/proc/{pid}/ns/net").st_ino


def listening_socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        target = os.readlink(f"/proc/{pid}/fd/{fd}")
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def listening_ports(pid: int) -> list[int]:
    """TCP ports ``pid`` listens on, in its own network namespace."""
    inodes = listening_socket_inodes(pid)
    ports = set()
    for table in (f"/proc/{pid}/net/tcp", f"/proc/{pid}/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return sorted(ports)


def host_socket_inodes() -> set[str]:
    """Inodes of every TCP socket in the machine's own network namespace."""
    inodes = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            inodes.add(line.split()[9])
    return inodes


def leftovers(state: dict) -> list[str]:
    """Every part of a server's sandbox that still exists: none after a proper end."""
    found = []
    network, cgroup = state.get("network"), state.get("cgroup")
    if state.get("netns") and os.path.exists(state["netns"]):
        found.append(f"namespace {state['netns']}")
    if network:
        if os.path.exists(f"/sys/class/net/{network['host_link']}"):
            found.append(f"link {network['host_link']}")
        if os.path.exists(network["claim"]):
            found.append(f"address claim {network['claim']}")
        ruleset = subprocess.run(
            ["nft", "list", "ruleset"], capture_output=True, text=True, check=True
        ).stdout
        for name in (network["host_link"], network["address"], network["name"]):
            if name in ruleset:
                found.append(f"rule naming {name}")
    if cgroup:
        for root in set(cgroup["roots"].values()):
            if Path(root, cgroup["path"]).exists():
                found.append(f"cgroup {root}/{cgroup['path']}")
    if state.get("process_tag") and tagged_pids(state["process_tag"]):
        found.append(f"processes {tagged_pids(state['process_tag'])}")
    return found


def hub_table_exists(hub_key: str) -> bool:
    done = subprocess.run(
        ["nft", "list", "table", "ip", f"codepilot_{hub_key}"], capture_output=True
    )
    return done.returncode == 0


def end_processes_mentioning(data_dir: Path) -> list[int]:
    """SIGTERM the processes whose command line names ``data_dir``: a hub's managed
    services that a SIGKILL of the hub left without their hub."""
    ended = []
    needle = str(data_dir).encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry), signal.SIGTERM)
                ended.append(int(entry))
    return ended

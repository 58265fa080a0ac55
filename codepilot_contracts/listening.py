"""Which TCP ports of a network namespace are listening, and which one is the app's.

The kernel says it in ``/proc/<task>/net/tcp`` and ``tcp6``, one line per socket of the
namespace that task is in. Both sides read it: the user server for its own namespace (to
tell the IDE what listens, and by which process), the preview gateway for a server's
namespace (to serve only ports something listens on, whatever the server says), and on
Kubernetes the pod's relay. A port is previewable when a socket listens on it at an
address the loopback reaches (``127.0.0.1``, ``::1``, or every address) and it is not
one of the server's own (its IDE's port, ports forwarded to the hub).
"""

import ipaddress
from dataclasses import dataclass

LISTEN = "0A"  # the state column of a listening socket (TCP_LISTEN)


@dataclass(frozen=True)
class Listener:
    """One listening socket: its address, port and inode (``socket:[<inode>]`` in a
    process's ``/proc/<pid>/fd``)."""

    address: str
    port: int
    inode: int

    @property
    def reachable_on_loopback(self) -> bool:
        """Whether a connection to 127.0.0.1 or ::1 on its port reaches it."""
        address = ipaddress.ip_address(self.address)
        mapped = getattr(address, "ipv4_mapped", None)
        address = mapped or address
        return address.is_loopback or address.is_unspecified


def kernel_address(hex_address: str) -> str:
    """``0100007F`` -> ``127.0.0.1``: the kernel prints each 32-bit word in host order
    (little-endian here), four of them for IPv6."""
    raw = bytes.fromhex(hex_address)
    host_order = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(host_order))


def parse_proc_net_tcp(text: str) -> list[Listener]:
    """The listening sockets in the text of ``/proc/net/tcp`` or ``tcp6``."""
    listeners = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != LISTEN:
            continue
        hex_address, _, hex_port = fields[1].partition(":")
        try:
            listener = Listener(kernel_address(hex_address), int(hex_port, 16), int(fields[9]))
        except ValueError:
            continue  # a line of a format this code does not know: not a port to serve
        listeners.append(listener)
    return listeners


def read_listeners(net_dir: str = "/proc/thread-self/net") -> list[Listener]:
    """The listening sockets of the namespace ``net_dir`` belongs to (blocking: /proc)."""
    listeners = []
    for name in ("tcp", "tcp6"):
        try:
            with open(f"{net_dir}/{name}") as stream:
                listeners.extend(parse_proc_net_tcp(stream.read()))
        except FileNotFoundError:
            continue  # a kernel without IPv6
    return listeners


def previewable_ports(listeners: list[Listener], reserved: frozenset[int] | set[int]) -> list[int]:
    """The ports a preview may reach, lowest first: on loopback, not the server's own."""
    return sorted({s.port for s in listeners if s.reachable_on_loopback and s.port not in reserved})


def app_port(port: int, listening: list[int], preferred: list[int] = ()) -> int | None:
    """The port the main preview shows: ``port`` (``PORT``) if it listens; else the
    lowest listening port of ``preferred`` (the run's processes, where known); else the
    lowest listening port; None when nothing listens."""
    if port in listening:
        return port
    ranked = [p for p in listening if p in preferred] or list(listening)
    return min(ranked) if ranked else None

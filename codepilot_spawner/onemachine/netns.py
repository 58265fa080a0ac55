"""A network namespace per user server, as a pod has one.

Layout (all names carry the hub's key, so several hubs on one machine never touch each
other's objects):

- the namespace ``cp-<hub>-<slot>``, bound at ``/run/netns/cp-<hub>-<slot>`` by ``ip netns``
  (that path is what the preview gateway opens with setns());
- a veth pair: ``cp<hub>h<slot>`` on the host, with a route to the server's address and
  no address of its own; ``eth0`` inside with ``<subnet>.4n+2/30`` and the default route
  through the hub's gateway ``<subnet>.1``, which no interface holds (the host's rules
  translate to and from it). Neighbours are fixed on both ends, so no ARP is needed.
  A start or stop thus changes no address on the host: Chromium, and other programs that
  watch the host's addresses, drop every request in flight when one changes
  (``ERR_NETWORK_CHANGED``), which a teacher's browser on the same machine would see at
  each student's start;
- one nftables table per hub on the host, ``ip codepilot_<hub>``, that matches the hub's
  links by name prefix, so a server adds no host rule of its own: traffic from the
  namespaces reaches the internet through NAT, the host only on the allowed loopback
  ports, nothing new enters a namespace but the hub's own (root) connections, and the
  cloud metadata range is dropped;
- inside each namespace a small table: ``127.0.0.1:<allowed port>`` is DNATed to the
  gateway, where the hub's table DNATs it on to the host's ``127.0.0.1:<port>``. The URLs
  the server gets (hub API, broker, S3 on loopback) stay valid unchanged. The hub's own
  connections into a namespace leave the host from the gateway address (SNAT), the only
  source the namespace lets in.

Address slots are claimed machine-wide with files created O_EXCL under
``/run/codepilot/slots``; like the namespaces, they vanish with a reboot.

Pure functions build the ``ip``, ``sh`` and ``nft`` input; the async functions at the end
run them with one process launch each.
"""

import asyncio
import hashlib
import ipaddress
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

NETNS_DIR = Path("/run/netns")
SLOT_DIR = Path("/run/codepilot/slots")
CLOUD_METADATA = "169.254.0.0/16"  # 169.254.169.254 and the rest of link-local
NAMESPACE_LINK = "eth0"
# Locally administered unicast addresses. Each veth pair is a link of its own, so every
# pair can use the same two.
HOST_LINK_MAC = "02:63:70:00:00:01"
NAMESPACE_LINK_MAC = "02:63:70:00:00:02"

# Names end up in shell scripts and nft rules: only these characters ever do.
_SAFE_NAME = re.compile(r"^[a-z0-9-]{1,40}$")


class NetworkError(RuntimeError):
    """Setting up or tearing down a server's network failed."""


def hub_key(data_dir: str) -> str:
    """Six hex digits naming one hub's objects, from its data directory."""
    return hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:6]


def slot_count(subnet: str) -> int:
    """/30 blocks in ``subnet``; block 0 is left out (it holds the network address)."""
    return ipaddress.ip_network(subnet).num_addresses // 4


def gateway(subnet: str) -> str:
    """The namespaces' gateway: the first address of block 0, which no server gets."""
    return str(ipaddress.ip_network(subnet).network_address + 1)


def preferred_slot(key: str, subnet: str) -> int:
    """Where a server starts looking for a free slot: spreads servers, stable per name."""
    digest = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)
    return 1 + digest % (slot_count(subnet) - 1)


@dataclass(frozen=True)
class ServerNetwork:
    """One server's namespace, link and addresses; rebuilt from ``to_state()`` after a
    hub restart."""

    name: str  # namespace name: cp-<hub>-<slot>
    host_link: str  # cp<hub>h<slot in hex>
    host_address: str  # the namespace's gateway: the hub's (before, one per server)
    address: str  # the server's address, inside the namespace
    claim: str  # the slot's claim file

    @classmethod
    def for_slot(cls, hub: str, subnet: str, slot: int) -> "ServerNetwork":
        network = ipaddress.ip_network(subnet)
        if not 0 < slot < slot_count(subnet):
            raise ValueError(f"slot {slot} is outside {subnet}")
        block = network.network_address + 4 * slot
        name = f"cp-{hub}-{slot}"
        return cls(
            name=name,
            host_link=f"cp{hub}h{slot:x}",
            host_address=gateway(subnet),
            address=str(block + 2),
            claim=str(SLOT_DIR / str(block)),
        )

    @property
    def path(self) -> str:
        return str(NETNS_DIR / self.name)

    def to_state(self) -> dict:
        return {
            "name": self.name,
            "host_link": self.host_link,
            "host_address": self.host_address,
            "address": self.address,
            "claim": self.claim,
        }

    @classmethod
    def from_state(cls, state: dict) -> "ServerNetwork":
        network = cls(**{key: state[key] for key in cls.__dataclass_fields__})
        check_names(network.name, network.host_link)
        ipaddress.ip_address(network.host_address)
        ipaddress.ip_address(network.address)
        return network


def check_names(*names: str) -> None:
    for name in names:
        if not _SAFE_NAME.match(name):
            raise ValueError(f"unsafe network object name {name!r}")


def check_ports(ports) -> list[int]:
    checked = sorted({int(port) for port in ports})
    for port in checked:
        if not 0 < port < 65536:
            raise ValueError(f"not a TCP port: {port}")
    return checked


# --- the hub's rules (one table per hub, shared by all its servers) ---------------------


def hub_table(hub: str) -> str:
    return f"codepilot_{hub}"


def hub_ruleset(hub: str, subnet: str, loopback_ports) -> str:
    """The hub's nftables table, replaced atomically by ``nft -f``.

    Matches the hub's host links by name (``cp<hub>h*``), so adding a server adds no rule.
    """
    check_names(hub)
    ipaddress.ip_network(subnet)
    links = f'"cp{hub}h*"'
    ports = check_ports(loopback_ports)
    port_set = f"elements = {{ {', '.join(map(str, ports))} }}" if ports else ""
    table = hub_table(hub)
    return f"""\
table ip {table}
delete table ip {table}
table ip {table} {{
  set loopback_ports {{ type inet_service; {port_set} }}
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    # A namespace's 127.0.0.1:<allowed port>, DNATed to its gateway, lands on the host's.
    # (The subnet, not the gateway alone: namespaces kept from before the shared gateway
    # use an address of their own block.)
    iifname {links} ip daddr {subnet} tcp dport @loopback_ports dnat to 127.0.0.1
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    iifname {links} masquerade
    # The hub's connections into a namespace come from the gateway, which no link holds.
    oifname {links} ip saddr != {subnet} snat to {gateway(subnet)}
  }}
  chain input {{
    type filter hook input priority filter; policy accept;
    iifname {links} ct state established,related accept
    iifname {links} ct status dnat ip daddr 127.0.0.1 tcp dport @loopback_ports accept
    # Every other port of the host, on any of its addresses.
    iifname {links} drop
  }}
  chain forward {{
    type filter hook forward priority filter; policy accept;
    oifname {links} ct state established,related accept
    # Nothing new enters a namespace by way of the host: not from another namespace
    # (of this hub or another), not from the network.
    oifname {links} drop
    # The gateway's other ports, and the rest of the subnet, are nobody's.
    iifname {links} ip daddr {subnet} drop
    iifname {links} ip daddr {CLOUD_METADATA} drop
    iifname {links} accept
  }}
  chain output {{
    type filter hook output priority filter; policy accept;
    # Only the hub (root) opens connections into a namespace, not other local users.
    oifname {links} ct state new meta skuid != 0 drop
  }}
}}
"""


def delete_hub_ruleset(hub: str) -> str:
    table = hub_table(hub)
    return f"table ip {table}\ndelete table ip {table}\n"


# --- one server's namespace -------------------------------------------------------------


def namespace_ruleset(network: ServerNetwork, loopback_ports, server_port: int) -> str:
    """The table inside the namespace: loopback forwarding to the host's allowed ports, and
    nothing in from outside but the hub's connections to the jupyter-server."""
    ports = check_ports(loopback_ports)
    nat = (
        f"    ip daddr 127.0.0.1 tcp dport {{ {', '.join(map(str, ports))} }} "
        f"dnat to {network.host_address}\n"
        if ports
        else ""
    )
    return f"""\
table ip codepilot {{
  chain output {{
    type nat hook output priority -100; policy accept;
{nat}  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    oifname "{NAMESPACE_LINK}" ip saddr 127.0.0.0/8 snat to {network.address}
  }}
  chain input {{
    type filter hook input priority filter; policy drop;
    iif "lo" accept
    ct state established,related accept
    iifname "{NAMESPACE_LINK}" ip saddr {network.host_address} tcp dport {int(server_port)} \
accept
  }}
}}
"""


def no_ipv6(link: str) -> str:
    """Shell that turns IPv6 off on ``link`` (its link-local address goes with it): the
    rules filter IPv4 only, and over IPv6 a namespace would reach the host's ``[::]``
    listeners. A kernel without IPv6 has nothing to turn off."""
    path = f"/proc/sys/net/ipv6/conf/{link}/disable_ipv6"
    return f"if [ -e {path} ]; then echo 1 > {path}; fi"


def setup_script(network: ServerNetwork, loopback_ports, server_port: int) -> str:
    """One ``sh -e`` script that creates the namespace, its link, addresses and rules."""
    check_names(network.name, network.host_link)
    return f"""\
set -e
ip -batch - <<'IP'
netns add {network.name}
link add {network.host_link} address {HOST_LINK_MAC} type veth \
peer name {NAMESPACE_LINK} address {NAMESPACE_LINK_MAC} netns {network.name}
IP
echo 1 > /proc/sys/net/ipv4/conf/{network.host_link}/route_localnet
{no_ipv6(network.host_link)}
ip -batch - <<'IP'
link set {network.host_link} up
route add {network.address}/32 dev {network.host_link}
neigh add {network.address} lladdr {NAMESPACE_LINK_MAC} dev {network.host_link} nud permanent
IP
ip -n {network.name} -batch - <<'IP'
link set lo up
addr add {network.address}/30 dev {NAMESPACE_LINK}
link set {NAMESPACE_LINK} up
neigh add {network.host_address} lladdr {HOST_LINK_MAC} dev {NAMESPACE_LINK} nud permanent
route add default via {network.host_address} dev {NAMESPACE_LINK} onlink
IP
ip netns exec {network.name} sh -ec '
echo 1 > /proc/sys/net/ipv4/conf/{NAMESPACE_LINK}/route_localnet
{no_ipv6(NAMESPACE_LINK)}
exec nft -f -' <<'NFT'
{namespace_ruleset(network, loopback_ports, server_port)}NFT
"""


def teardown_batch(network: ServerNetwork) -> str:
    """``ip -force -batch`` input that removes the link (both ends) and the namespace."""
    check_names(network.name, network.host_link)
    return f"link del {network.host_link}\nnetns del {network.name}\n"


# --- finding a hub's objects (for "stop everything") -------------------------------------


def hub_namespaces(hub: str, netns_dir: Path = NETNS_DIR) -> list[str]:
    prefix = f"cp-{hub}-"
    try:
        return sorted(name for name in os.listdir(netns_dir) if name.startswith(prefix))
    except FileNotFoundError:
        return []


def hub_links(hub: str, sys_net: Path = Path("/sys/class/net")) -> list[str]:
    prefix = f"cp{hub}h"
    return sorted(name for name in os.listdir(sys_net) if name.startswith(prefix))


def hub_claims(hub: str, slot_dir: Path = SLOT_DIR) -> list[Path]:
    claims = []
    try:
        entries = list(slot_dir.iterdir())
    except FileNotFoundError:
        return []
    for entry in entries:
        try:
            if entry.read_text().startswith(f"cp-{hub}-"):
                claims.append(entry)
        except FileNotFoundError:
            continue
    return claims


# --- slots ---------------------------------------------------------------------------------


def claim_slot(hub: str, subnet: str, key: str) -> ServerNetwork:
    """Claim a free /30 of ``subnet`` for a server (machine-wide, O_EXCL files)."""
    SLOT_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
    count = slot_count(subnet)
    start = preferred_slot(key, subnet)
    for offset in range(count - 1):
        slot = 1 + (start - 1 + offset) % (count - 1)
        network = ServerNetwork.for_slot(hub, subnet, slot)
        try:
            fd = os.open(network.claim, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w") as claim:
            claim.write(network.name + "\n")
        return network
    raise NetworkError(f"no free address block left in {subnet}")


def release_slot(network: ServerNetwork) -> None:
    Path(network.claim).unlink(missing_ok=True)


# --- running the commands ----------------------------------------------------------------


async def run(command: list[str], stdin: str = "") -> str:
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate(stdin.encode())
    text = output.decode(errors="replace").strip()
    if process.returncode != 0:
        raise NetworkError(f"{command[0]} failed ({process.returncode}): {text}")
    return text


def enable_forwarding() -> None:
    # Routing for the namespaces' outbound traffic. Machine-wide, and left on: other
    # hubs' namespaces need it as well.
    with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
        f.write("1")


_applied_rulesets: dict[str, str] = {}


async def ensure_hub_rules(hub: str, subnet: str, loopback_ports) -> None:
    """Install (or replace) the hub's table, once per hub process and configuration."""
    ruleset = hub_ruleset(hub, subnet, loopback_ports)
    if _applied_rulesets.get(hub) == ruleset:
        return
    missing = [tool for tool in ("ip", "nft") if shutil.which(tool) is None]
    if missing:
        raise NetworkError(
            f"{' and '.join(missing)} not found: install iproute2 and nftables "
            "(make isolation-tools), or turn isolation off (CODEPILOT_ISOLATION=false)"
        )
    await asyncio.to_thread(enable_forwarding)
    await run(["nft", "-f", "-"], ruleset)
    _applied_rulesets[hub] = ruleset


async def remove_hub_rules(hub: str) -> None:
    _applied_rulesets.pop(hub, None)
    await run(["nft", "-f", "-"], delete_hub_ruleset(hub))


async def create_namespace(network: ServerNetwork, loopback_ports, server_port: int) -> None:
    """Create the namespace; on failure, remove whatever part of it was made."""
    try:
        await run(["sh", "-c", setup_script(network, loopback_ports, server_port)])
    except NetworkError:
        await remove_namespace(network)
        raise


async def remove_namespace(network: ServerNetwork) -> None:
    """Remove link and namespace (what is already gone is skipped), then free the slot."""
    # -force: carry on past objects that are gone already, as after a partial setup.
    try:
        await run(["ip", "-force", "-batch", "-"], teardown_batch(network))
    except NetworkError:
        leftovers = [
            path
            for path in (Path(network.path), Path("/sys/class/net") / network.host_link)
            if path.exists()
        ]
        if leftovers:
            raise
    await asyncio.to_thread(release_slot, network)

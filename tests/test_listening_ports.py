"""Which ports of a server listen, which is the app's, and the hosts that preview them.

Read from the real ``/proc`` of this test process: its own sockets stand for a server's
app (the kernel lists them as it lists an app's in a namespace or a pod).
"""

import os
import re
import socket
from dataclasses import replace

import pytest

from codepilot_contracts.listening import (
    Listener,
    app_port,
    kernel_address,
    parse_proc_net_tcp,
    previewable_ports,
    read_listeners,
)
from codepilot_contracts.porthosts import port_label, port_url, split_port_label
from codepilot_contracts.relay import parse_start_line, start_line
from codepilot_spawner.services.preview.hosts import PreviewDomain, preview_label
from codepilot_spawner.services.preview.servers import PreviewTarget, target_of
from codepilot_spawner.spawners.previewroute import PreviewRoute
from server_extension.listeningports import (
    describe_ports,
    socket_holders,
    socket_inode,
)

from .support.hubtools import has_ipv6_loopback
from .test_preview_units import NAMES

DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


@pytest.fixture
def listening():
    """A socket listening on 127.0.0.1, as a dev server that ignores ``PORT`` does."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock


def test_the_kernel_lists_a_listening_socket_with_its_address_port_and_inode(listening):
    port = listening.getsockname()[1]
    inode = os.fstat(listening.fileno()).st_ino
    with socket.socket() as bound_only:  # bound but not listening: no app to preview
        bound_only.bind(("127.0.0.1", 0))
        listeners = read_listeners("/proc/self/net")
        assert Listener("127.0.0.1", port, inode) in listeners
        assert bound_only.getsockname()[1] not in {s.port for s in listeners}


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback here")
def test_the_kernel_lists_ipv6_sockets_too():
    with socket.socket(socket.AF_INET6) as sock:
        sock.bind(("::1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert ("::1", port) in {(s.address, s.port) for s in read_listeners("/proc/self/net")}


def test_addresses_and_lines_as_the_kernel_prints_them():
    assert kernel_address("0100007F") == "127.0.0.1"
    assert kernel_address("00000000") == "0.0.0.0"
    assert kernel_address("00000000000000000000000001000000") == "::1"
    mapped = kernel_address("0000000000000000FFFF00000100007F")  # ::ffff:127.0.0.1
    assert Listener(mapped, 1, 1).reachable_on_loopback
    text = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid"
        "  timeout inode\n"
        "   0: 0100007F:1435 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000"
        "        0 4242 1 0000000000000000 100 0 0 10 0\n"
        "   1: 0100007F:1435 0100007F:9C40 01 00000000:00000000 00:00000000 00000000  1000"
        "        0 4243 1 0000000000000000 20 4 30 10 -1\n"
        "   2: garbage\n"
    )
    assert parse_proc_net_tcp(text) == [Listener("127.0.0.1", 5173, 4242)]


def test_only_loopback_ports_that_are_not_the_servers_own_are_previewable():
    listeners = [
        Listener("127.0.0.1", 5173, 1),
        Listener("0.0.0.0", 8000, 2),
        Listener("::", 8000, 3),
        Listener("::ffff:127.0.0.1", 4000, 4),
        Listener("172.30.0.2", 8888, 5),  # the IDE, on the namespace's own address
        Listener("127.0.0.1", 8081, 6),  # a port forwarded to the hub
    ]
    assert previewable_ports(listeners, {8081}) == [4000, 5173, 8000]


def test_the_app_is_port_else_the_runs_port_else_another():
    assert app_port(3000, [3000, 5173]) == 3000
    assert app_port(3000, [5173, 8000], preferred=[8000]) == 8000
    assert app_port(3000, [5173, 8000]) == 5173
    assert app_port(3000, []) is None


def test_this_process_holds_its_socket_and_the_server_never_lists_its_own(listening):
    inode = os.fstat(listening.fileno()).st_ino
    assert socket_holders({inode}) == {inode: os.getpid()}
    assert socket_inode(f"socket:[{inode}]") == inode
    assert socket_inode("/dev/null") is None and socket_inode("socket:[x]") is None
    listeners = read_listeners("/proc/self/net")
    # Held by the server's own process (this one): its IDE's, no preview.
    described = describe_ports(listeners, socket_holders({inode}), set(), {os.getpid()})
    assert listening.getsockname()[1] not in {p.port for p in described}


def test_port_hosts_fit_a_dns_label_and_name_their_port_without_doubt():
    for user, server in NAMES:
        label = preview_label(user, server)
        assert "--" not in label
        for port in (1, 5173, 65535):
            host = port_label(port, label)
            assert DNS_LABEL.match(host) and len(host) <= 63, host
            assert split_port_label(host) == (port, label)
    assert split_port_label("alice-abc") == (0, "alice-abc")
    for bad in ("0--alice", "65536--alice", "099--alice"):
        assert split_port_label(bad)[0] <= 0 and split_port_label(bad)[1] != "alice"
    url = PreviewDomain("preview.localhost", "http", 8002).url("alice")
    assert port_url(url, 5173) == url.replace("://", "://5173--")


def test_a_port_host_is_an_origin_of_its_own_only_where_the_server_has_a_network():
    label = preview_label("ana")
    namespace = PreviewRoute("s1", 3000, netns="/run/netns/x", reserved_ports=(8081, 41000))
    isolated = PreviewTarget("ana", "", label, namespace)
    shared = PreviewTarget("ana", "", preview_label("bo"), PreviewRoute("s2", 41234))
    pod = PreviewRoute("s3", 3000, 9797, "10.0.0.7", relay_checks_start=True)
    targets = {t.label: t for t in (isolated, shared)}
    port_target = target_of(f"5173--{label}", targets)
    assert port_target.port == 5173 and port_target.label == f"5173--{label}"
    assert port_target.start == isolated.start  # same server start, same share level
    assert target_of(label, targets) is isolated
    # The machine's loopback is shared by every server and the hub: no port hosts there.
    assert target_of(f"5173--{shared.label}", targets) is None
    assert target_of(f"70000--{label}", targets) is None
    # Started before routes named the server's own ports: which ports those are is unknown.
    assert not replace(namespace, reserved_ports=()).previews_ports
    # A pod's relay reaches other ports only when it checks them itself.
    assert not pod.previews_ports
    picking = PreviewRoute(
        "s3", 3000, 9797, "10.0.0.7", relay_checks_start=True, relay_picks_port=True
    )
    assert picking.previews_ports
    assert picking.preamble_for(5173) == start_line("s3", 5173)
    assert picking.connection_preamble == start_line("s3")


def test_start_lines_name_a_start_and_maybe_a_port():
    assert parse_start_line(start_line("ab12")) == ("ab12", 0)
    assert parse_start_line(start_line("ab12", 5173)) == ("ab12", 5173)
    for bad in (b"CODEPILOT-START ab12 0\r\n", b"CODEPILOT-START ab12 99999\r\n", b"GET /\r\n"):
        assert parse_start_line(bad) is None
    with pytest.raises(ValueError):
        start_line("ab12", 70000)

"""The preview route: what a spawner's state tells the preview gateway, in both shapes a
hub's database may hold (this version's keys, and those of servers started before)."""

import json
from dataclasses import replace

import pytest

from codepilot_contracts.relay import start_line
from codepilot_spawner.services.preview.servers import targets_from_users
from codepilot_spawner.spawners.previewroute import LOOPBACK, PreviewRoute

TAG = "9f86d081884c7d659a2feaa0c55ad015"
START = "a1b2c3d4e5f6a7b8"
NETNS = "/run/netns/cp-abc123-5"
POD_IP = "10.1.2.3"

ISOLATED = PreviewRoute(start_id=TAG, app_port=3000, netns=NETNS)
NOT_ROOT = PreviewRoute(start_id=TAG, app_port=41234)
POD = PreviewRoute(
    start_id=START, app_port=3000, relay_port=9797, host=POD_IP, relay_checks_start=True
)

# What the spawners keep beside the route.
LOCAL_KEYS = {
    "pid": 4242,
    "process_tag": TAG,
    "network": {
        "name": "cp-abc123-5",
        "host_link": "cpabc123h5",
        "host_address": "172.30.0.21",
        "address": "172.30.0.22",
        "claim": "/run/codepilot/slots/172.30.0.20",
    },
    "cgroup": {"version": 2, "roots": {}, "path": "codepilot/abc123/cp-abc123-5"},
}
KUBE_KEYS = {
    "kubespawner_version": "7.0.0",
    "pod_name": "jupyter-alice",
    "namespace": "codepilot",
    "dns_name": "jupyter-alice.codepilot.svc.cluster.local",
}

# The states of the version before the route, as servers it started keep them.
OLD_ISOLATED = {**LOCAL_KEYS, "preview_port": 3000, "netns": NETNS}
OLD_NOT_ROOT = {"pid": 4242, "process_tag": TAG, "preview_port": 41234, "netns": ""}
OLD_POD = {
    **KUBE_KEYS,
    "start_id": START,
    "preview_host": POD_IP,
    "preview_port": 9797,  # the relay's
    "preview_app_port": 3000,
    "preview_start_check": True,
}


@pytest.mark.parametrize("route", [ISOLATED, NOT_ROOT, POD], ids=["isolated", "not-root", "pod"])
def test_a_route_comes_back_from_the_state_it_writes(route):
    state = route.to_state()
    assert set(state) == {
        "start_id",
        "app_port",
        "relay_port",
        "host",
        "netns",
        "relay_checks_start",
        "reserved_ports",
        "relay_picks_port",
    }
    assert PreviewRoute.from_state(state) == route
    ports = replace(route, reserved_ports=(8081, 41000), relay_picks_port=True)
    assert PreviewRoute.from_state(json.loads(json.dumps(ports.to_state()))) == ports
    # Beside the spawner's own keys, as the hub's API gives the state.
    assert PreviewRoute.from_state({**LOCAL_KEYS, **KUBE_KEYS, **state}) == route


def test_the_gateway_connects_to_the_relay_or_else_to_the_app():
    assert (ISOLATED.host, ISOLATED.port, ISOLATED.connection_preamble) == (LOOPBACK, 3000, b"")
    assert (POD.host, POD.port, POD.app_port) == (POD_IP, 9797, 3000)
    assert POD.connection_preamble == start_line(START)
    unchecked = PreviewRoute(START, 3000, relay_port=9797, host=POD_IP)
    assert unchecked.connection_preamble == b""


@pytest.mark.parametrize(
    "old, route",
    [(OLD_ISOLATED, ISOLATED), (OLD_NOT_ROOT, NOT_ROOT), (OLD_POD, POD)],
    ids=["isolated", "not-root", "pod"],
)
def test_servers_started_before_the_route_are_still_reached(old, route):
    assert PreviewRoute.from_state(old) == route


def test_a_pod_started_before_the_start_check_gets_no_start_line():
    old = {key: value for key, value in OLD_POD.items() if key != "preview_start_check"}
    route = PreviewRoute.from_state(old)
    assert (route.port, route.relay_checks_start, route.connection_preamble) == (9797, False, b"")
    new = {key: value for key, value in POD.to_state().items() if key != "relay_checks_start"}
    assert PreviewRoute.from_state(new).connection_preamble == b""


@pytest.mark.parametrize(
    "state",
    [
        {},  # never started, or stopped: the spawner cleared its state
        {"pid": 4242, "process_tag": TAG},
        {**KUBE_KEYS, "start_id": START},  # a pod without a relay, or without an IP yet
        {**OLD_NOT_ROOT, "preview_port": 0},
        {**POD.to_state(), "app_port": 0},
    ],
    ids=["empty", "no-port", "pod-without-relay", "old-no-port", "zero-port"],
)
def test_a_server_without_a_preview_has_no_route(state):
    assert PreviewRoute.from_state(state) is None


def test_the_gateway_routes_ready_servers_whatever_the_shape_of_their_state():
    def server(state, ready=True):
        return {"ready": ready, "state": state}

    users = [
        {
            "name": "alice",
            "groups": ["students"],
            "servers": {"": server(POD.to_state()), "old": server(OLD_POD)},
        },
        {
            "name": "bob",
            "servers": {
                "": server(OLD_ISOLATED),
                "starting": server(ISOLATED.to_state(), ready=False),
                "no-relay": server({**KUBE_KEYS, "start_id": START}),
            },
        },
    ]
    targets = {(t.user, t.server): t for t in targets_from_users(users).values()}
    assert set(targets) == {("alice", ""), ("alice", "old"), ("bob", "")}
    assert targets["alice", ""].route == targets["alice", "old"].route == POD
    assert targets["alice", ""].start == START and targets["alice", ""].groups == ("students",)
    assert targets["bob", ""].route == ISOLATED and targets["bob", ""].start == TAG

"""Each server isolated like a pod, on one machine: a network of its own, limits, and a
life longer than the hub's. The real hub, proxy, gateway, servers and kernel objects.

Mallory attacks; bob is her neighbour. Tests that need root (the namespaces, cgroups
and Unix users) are marked ``root``; the rest check the pure builders.
"""

import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests
import websockets.sync.client

from codepilot_spawner.onemachine import netns
from codepilot_spawner.onemachine.cgroups import (
    Hierarchy,
    Limits,
    find_hierarchy,
    limit_files,
    oom_kills,
)
from codepilot_spawner.onemachine.cgroups import parse_memory as parse_memory_limit
from codepilot_spawner.onemachine.netns import NAMESPACE_LINK
from codepilot_spawner.onemachine.processes import tagged_pids
from codepilot_spawner.onemachine.settings import (
    IsolationSettings,
    OneMachineSettings,
    SettingsError,
    loopback_url_port,
    server_loopback_ports,
)
from codepilot_spawner.services.preview.hosts import PreviewDomain
from codepilot_spawner.spawners.local import stop_notice

from .support.hubtools import RunningHub, free_port, login, server_state, start_hub, wait_until
from .support.isolationtools import (
    end_processes_mentioning,
    host_socket_inodes,
    http_get_in_namespace,
    hub_table_exists,
    leftovers,
    listening_ports,
    listening_socket_inodes,
    namespace_inode,
    process_namespace_inode,
)
from .support.localhost import resolve_localhost_subdomains
from .support.students import Student
from .support.terminals import run_in_terminal

LIMITS = {
    "CODEPILOT_MEM_LIMIT": "512M",
    "CODEPILOT_CPU_LIMIT": "1",
    "CODEPILOT_PIDS_LIMIT": "256",
}
NAVIGATE = {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Site": "none", "Sec-Fetch-Dest": "document"}

SQUATTER = """\
import socket, sys
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("0.0.0.0", 3000))
server.listen()
print("SQUATTING", flush=True)
while True:
    connection, _ = server.accept()
    with open("squatted.log", "ab") as log:
        log.write(connection.recv(65536) or b"(connected)")
    connection.sendall(b"HTTP/1.0 200 OK\\r\\n\\r\\nMALLORY")
    connection.close()
"""

PROBE = """\
import socket, sys
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
        print("PROBE", target, "open")
    except OSError as error:
        print("PROBE", target, "closed", type(error).__name__)
print("PROBES-DONE")
"""


def probe(student: Student, *targets: str) -> dict[str, str]:
    """Which of ``targets`` (host:port) the student's own code can connect to."""
    student.save("probe.py", PROBE)
    output = student.run(f"python probe.py {' '.join(targets)}")
    return dict(re.findall(r"PROBE (\S+) (open|closed)", output))


@pytest.fixture(scope="module")
def hub():
    running = start_hub(env=LIMITS)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def bob(hub):
    return Student(hub, "bob")


@pytest.fixture(scope="module")
def mallory(hub):
    return Student(hub, "mallory")


# --- a network namespace per server ------------------------------------------------------


@pytest.mark.integration
@pytest.mark.root
def test_each_server_has_a_namespace_of_its_own_and_port_3000(bob, mallory):
    states = [bob.state, mallory.state]
    for state in states:
        assert state["app_port"] == 3000
        assert state["netns"].startswith("/run/netns/cp-")
        assert os.path.exists(state["netns"])
    assert states[0]["netns"] != states[1]["netns"]
    output = bob.run('echo "PORT=$PORT NS=$(stat -L -c %i /proc/self/ns/net)"')
    port, inode = re.search(r"PORT=(\d+) NS=(\d+)", output).groups()
    assert port == "3000"
    assert int(inode) == namespace_inode(states[0]["netns"])
    assert int(inode) != namespace_inode("/proc/self/ns/net")
    # No address on the machine's side: a start changes none, which browsers on this
    # machine would take for a network change (tests/browser/test_same_machine_browser).
    for state in states:
        assert link_addresses(state["network"]["host_link"], family="-4") == []


@pytest.mark.integration
@pytest.mark.root
def test_a_squatter_never_gets_the_neighbours_preview(hub, bob, mallory):
    mallory.save("squat.py", SQUATTER)
    with mallory.terminal() as squatter:
        run_in_terminal(squatter, "python squat.py", "SQUATTING")
        # Mallory's listener is real: in her own namespace it answers.
        assert "MALLORY" in http_get_in_namespace(mallory.state["netns"])
        squat_log = hub.data_dir / "workspaces" / "mallory" / "default" / "squatted.log"
        squat_log.unlink()

        # Bob has no app: his port 3000 is free, whatever Mallory listens on.
        with pytest.raises(ConnectionRefusedError):
            http_get_in_namespace(bob.state["netns"])
        # Bob opens his preview, signed in with his hub cookies, as a browser does.
        with resolve_localhost_subdomains():
            browser = login(hub, "bob")
            url = PreviewDomain("preview.localhost", "http", hub.preview_port).url("bob")
            page = browser.get(url, headers=NAVIGATE, timeout=30)
        assert "MALLORY" not in page.text
        assert not squat_log.exists(), squat_log.read_bytes()

        # Bob can bind his own 3000 while Mallory holds hers.
        bob.save("index.html", "BOB-APP")
        with bob.terminal() as app:
            app.send(json.dumps(["stdin", "python -m http.server 3000 --bind 127.0.0.1\r"]))
            wait_until(lambda: _serves(bob.state["netns"], "BOB-APP"), 30, 0.3, "bob's app on 3000")
            assert not squat_log.exists()
            app.send(json.dumps(["stdin", "\x03"]))
        squatter.send(json.dumps(["stdin", "\x03"]))


def _serves(netns_path: str, text: str) -> bool:
    try:
        return text in http_get_in_namespace(netns_path)
    except OSError:
        return False


@pytest.mark.integration
@pytest.mark.root
def test_another_student_cannot_reach_an_app_or_server(hub, bob, mallory):
    bob.save("index.html", "BOB-APP")
    with bob.terminal() as app:
        app.send(json.dumps(["stdin", "python -m http.server 3000 --bind 0.0.0.0\r"]))
        wait_until(lambda: _serves(bob.state["netns"], "BOB-APP"), 30, 0.3, "bob's app")
        state = bob.state
        (jupyter_port,) = listening_ports(state["pid"])
        targets = [
            f"{state['network']['address']}:3000",  # the app, from outside
            f"{state['network']['address']}:{jupyter_port}",  # bob's jupyter-server
            f"{state['network']['host_address']}:3000",  # bob's gateway
            "127.0.0.1:3000",  # Mallory's own namespace: nothing there
        ]
        seen = probe(mallory, *targets)
        # The hub (root) reaches bob's jupyter-server on that address, as the proxy does.
        socket.create_connection((state["network"]["address"], jupyter_port), 5).close()
        app.send(json.dumps(["stdin", "\x03"]))
    assert seen == dict.fromkeys(targets, "closed")


@pytest.mark.integration
@pytest.mark.root
def test_the_apps_socket_is_not_in_the_machines_namespace(hub, bob):
    bob.save("index.html", "BOB-APP")
    with bob.terminal() as app:
        app.send(json.dumps(["stdin", "python -m http.server 3000 --bind 0.0.0.0\r"]))
        wait_until(lambda: _serves(bob.state["netns"], "BOB-APP"), 30, 0.3, "bob's app")
        pids = [
            pid
            for pid in tagged_pids(bob.state["process_tag"])
            if b"http.server" in Path(f"/proc/{pid}/cmdline").read_bytes()
        ]
        assert pids
        assert process_namespace_inode(pids[0]) == namespace_inode(bob.state["netns"])
        assert process_namespace_inode(pids[0]) != namespace_inode("/proc/self/ns/net")
        sockets = listening_socket_inodes(pids[0])
        assert sockets
        assert not sockets & host_socket_inodes()
        app.send(json.dumps(["stdin", "\x03"]))


@pytest.mark.integration
@pytest.mark.root
def test_only_the_allowed_host_ports_are_reachable(hub, mallory):
    # A service on the host's loopback that is not on the allow-list.
    private = socket.socket()
    private.bind(("127.0.0.1", free_port()))
    private.listen()
    try:
        hub_port = hub.env["CODEPILOT_HUB_PORT"]
        api_port = hub.env["CODEPILOT_PREVIEW_API_PORT"]
        seen = probe(
            mallory,
            f"127.0.0.1:{hub_port}",
            f"127.0.0.1:{api_port}",
            f"127.0.0.1:{private.getsockname()[1]}",
            f"127.0.0.1:{hub.env['CODEPILOT_PROXY_API_PORT']}",
            "169.254.169.254:80",
        )
    finally:
        private.close()
    assert seen[f"127.0.0.1:{hub_port}"] == "open"
    assert seen[f"127.0.0.1:{api_port}"] == "open"
    closed = [target for target, status in seen.items() if status == "closed"]
    assert len(closed) == 3, seen
    # The hub API answers the server with its own token, at the URL it was given.
    output = mallory.run(
        "curl -s -o /dev/null -w 'API=%{http_code}\\n' "
        '-H "Authorization: token $JUPYTERHUB_API_TOKEN" "$JUPYTERHUB_API_URL/user"'
    )
    assert "API=200" in output


def link_addresses(link: str, netns_name: str = "", family: str = "-6") -> list[str]:
    where = ["-n", netns_name] if netns_name else []
    shown = subprocess.run(
        ["ip", *where, family, "-o", "addr", "show", "dev", link],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return re.findall(r"inet6? (\S+?)/", shown)


@pytest.mark.integration
@pytest.mark.root
def test_a_student_sees_only_their_own_tmp_and_processes(hub, bob, mallory):
    """/tmp is the student's own folder, bound there (or, when the install itself lies
    in /tmp, which that would hide, their TMPDIR); /proc shows their processes only."""
    bob.run('echo bobs > "${TMPDIR:-/tmp}/bob-secret.txt"')
    seen = mallory.run(
        'ls -a /tmp "${TMPDIR:-/tmp}"; echo OWNERS; '
        "for p in /proc/[0-9]*; do stat -c %U $p; done | sort -u"
    )
    listing, owners = seen.split("OWNERS", 1)
    assert "bob-secret.txt" not in listing
    accounts = rf"^({re.escape(hub.account_prefix)}\S+|root)\s*$"
    assert set(re.findall(accounts, owners, re.M)) == {hub.account("mallory")}, owners
    assert (hub.data_dir / "tmp" / "bob" / "bob-secret.txt").read_text() == "bobs\n"
    assert not Path("/tmp/bob-secret.txt").exists()


@pytest.mark.integration
@pytest.mark.root
def test_no_ipv6_crosses_a_namespaces_link(hub, mallory):
    """The rules filter IPv4; over the link's IPv6 link-local addresses a namespace
    would reach every host service listening on [::]."""
    network = server_state(hub, "mallory")["network"]
    host_side = link_addresses(network["host_link"])
    inside = link_addresses(NAMESPACE_LINK, network["name"])
    listener = socket.socket(socket.AF_INET6)
    listener.bind(("::", 0))
    listener.listen()
    try:
        port = listener.getsockname()[1]
        seen = probe(mallory, *(f"{address}%{NAMESPACE_LINK}:{port}" for address in host_side))
    finally:
        listener.close()
    assert (host_side, inside) == ([], []), seen
    assert "open" not in seen.values()


@pytest.mark.integration
@pytest.mark.root
def test_pip_install_from_a_terminal_reaches_pypi(bob):
    output = bob.run(
        "python -m pip install --isolated --no-cache-dir --disable-pip-version-check "
        "--index-url https://pypi.org/simple --target ./pkgs six >/dev/null 2>pip.err; "
        'echo "PIP=$?"; PYTHONPATH=./pkgs python -c "import six; print(\'SIX\', six.__name__)"',
        timeout=180,
    )
    assert "PIP=0" in output, output
    assert "SIX six" in output


# --- limits --------------------------------------------------------------------------------


def echo_round_trips(ws, until, limit: float = 120) -> int:
    """Type echoes into a terminal until ``until()``; each must come back."""
    answered, deadline = 0, time.monotonic() + limit
    while not until() and time.monotonic() < deadline:
        run_in_terminal(ws, f"echo alive-$((1000+{answered}))", f"alive-{1000 + answered}")
        answered += 1
        time.sleep(0.2)
    return answered


@pytest.mark.integration
@pytest.mark.root
def test_a_fork_bomb_hits_its_own_ceiling_while_a_neighbour_answers(hub, bob):
    eve = Student(hub, "eve")
    cgroup = eve.state["cgroup"]
    pids_dir = Path(cgroup["roots"]["pids"], cgroup["path"])
    state = eve.state
    with bob.terminal() as neighbour, eve.terminal() as bomb:
        bomb.send(json.dumps(["stdin", "bomb() { bomb | bomb & }; bomb\r"]))
        started = time.monotonic()
        answered = echo_round_trips(neighbour, lambda: time.monotonic() - started > 10)
        failed_forks = int((pids_dir / "pids.events").read_text().split()[1])
        current = int((pids_dir / "pids.current").read_text())
    assert answered > 10
    assert failed_forks > 0  # the bomb reached the ceiling
    assert current <= 256
    hub.stop_server("eve")
    assert leftovers(state) == []
    assert hub.api("GET", "/users/bob").json()["servers"][""]["ready"]


@pytest.mark.integration
@pytest.mark.root
def test_a_server_over_its_memory_limit_stops_alone_with_a_message(hub, bob):
    oscar = Student(hub, "oscar")
    state = oscar.state
    with bob.terminal() as neighbour, oscar.terminal() as hog:
        hog.send(
            json.dumps(
                ["stdin", "python -c 'b=[bytearray(100<<20) for _ in range(40)]; print(1)'\r"]
            )
        )
        answered = echo_round_trips(
            neighbour, lambda: "" not in hub.api("GET", "/users/oscar").json()["servers"]
        )
    hub.wait_stopped("oscar", timeout=90)
    assert answered > 0
    reason = server_state(hub, "oscar", stopped=True)["stop_reason"]
    assert "memory limit (512 MiB)" in reason
    # The student sees why on the page that starts it again.
    page = login(hub, "oscar").get(f"{hub.url}/hub/spawn/oscar", timeout=30)
    assert "went over its memory limit" in page.text
    assert leftovers(state) == []
    assert hub.api("GET", "/users/bob").json()["servers"][""]["ready"]
    assert "went over its memory limit" in hub.log()


# --- nothing left behind -----------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.root
def test_stop_leaves_nothing(hub):
    carol = Student(hub, "carol")
    state = carol.state
    carol.run("setsid nohup sh -c 'trap \"\" TERM HUP; exec sleep 1000' >/dev/null 2>&1 &")
    assert leftovers(state) != []  # the check sees them while the server runs
    hub.stop_server("carol")
    assert leftovers(state) == []


@pytest.mark.integration
@pytest.mark.root
def test_a_crashed_server_leaves_nothing(hub):
    dora = Student(hub, "dora")
    state = dora.state
    dora.run("sleep 1000 &")
    os.kill(state["pid"], signal.SIGKILL)
    hub.wait_stopped("dora", timeout=90)
    wait_until(lambda: leftovers(state) == [], 30, 0.5, "dora's sandbox removed")
    reason = server_state(hub, "dora", stopped=True)["stop_reason"]
    assert "JupyterLab exited" in reason


# --- servers outlive the hub -------------------------------------------------------------


@pytest.fixture
def lone_hub():
    running = start_hub(env=LIMITS)
    yield running
    running.stop()
    end_processes_mentioning(running.data_dir)


def restart(hub: RunningHub) -> RunningHub:
    return start_hub(data_dir=hub.data_dir, env=hub.env)


@pytest.mark.integration
@pytest.mark.root
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_servers_outlive_a_hub_restart(lone_hub, how):
    hub = lone_hub
    frank = Student(hub, "frank")
    created = requests.post(f"{frank.url}api/terminals", headers=frank.headers, timeout=30)
    terminal = created.json()["name"]
    frank.save("index.html", "FRANK-APP")
    ws_url = "ws" + frank.url[len("http") :] + f"terminals/websocket/{terminal}"
    with websockets.sync.client.connect(ws_url, additional_headers=frank.headers) as ws:
        ws.send(json.dumps(["stdin", "python -m http.server 3000 --bind 127.0.0.1 &\r"]))
        run_in_terminal(ws, "export BEFORE=restart-$((20+1)); echo set-$BEFORE", "set-restart-21")
    state = frank.state
    wait_until(lambda: _serves(state["netns"], "FRANK-APP"), 30, 0.3, "frank's app")

    hub.process.send_signal(how)
    hub.process.wait(60)
    assert os.path.exists(state["netns"])
    assert _serves(state["netns"], "FRANK-APP")  # while no hub runs

    again = restart(hub)
    try:
        server = again.wait_ready("frank", timeout=60)
        assert server["state"]["netns"] == state["netns"]
        with websockets.sync.client.connect(ws_url, additional_headers=frank.headers) as ws:
            output = run_in_terminal(ws, "echo still-$BEFORE", "still-restart-21")
        assert "still-restart-21" in output
        assert _serves(state["netns"], "FRANK-APP")
        with resolve_localhost_subdomains():
            browser = login(again, "frank")
            url = PreviewDomain("preview.localhost", "http", again.preview_port).url("frank")
            page = browser.get(url, headers=NAVIGATE, timeout=30)
        assert page.status_code == 200 and "FRANK-APP" in page.text, page.text[:2000]
        again.stop_server("frank")
        assert leftovers(state) == []
    finally:
        again.stop()


@pytest.mark.integration
@pytest.mark.root
def test_a_server_that_died_while_the_hub_was_down_leaves_nothing(lone_hub):
    hub = lone_hub
    gina = Student(hub, "gina")
    gina.run("sleep 1000 &")
    state = gina.state
    hub.stop(keep_servers=True)
    os.kill(state["pid"], signal.SIGKILL)
    again = restart(hub)
    try:
        assert "" not in again.api("GET", "/users/gina").json()["servers"]
        assert leftovers(state) == []
    finally:
        again.stop()


@pytest.mark.integration
@pytest.mark.root
def test_stop_all_ends_every_server_and_the_hubs_rules(lone_hub):
    hub = lone_hub
    states = [Student(hub, name).state for name in ("hugo", "iris")]
    key = netns.hub_key(str(hub.data_dir))
    assert hub_table_exists(key)
    hub.stop(keep_servers=True)  # SIGTERM: the servers keep running ...
    output = hub.stop_everything()  # ... until everything is stopped
    assert "2 servers" in output
    for state in states:
        assert leftovers(state) == []
    assert not hub_table_exists(key)
    assert netns.hub_namespaces(key) == []


# --- the pure parts (no root needed) -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("512M", 512 << 20), ("2G", 2 << 30), ("1.5GiB", 3 << 29), ("67108864", 64 << 20)],
)
def test_memory_sizes(text, expected):
    assert parse_memory_limit(text) == expected


@pytest.mark.parametrize("text", ["lots", "-1G", "1X", "1M"])
def test_bad_memory_sizes_are_refused(text):
    with pytest.raises(ValueError):
        parse_memory_limit(text)


def test_isolation_settings_from_the_environment():
    settings = IsolationSettings.from_env(
        {"CODEPILOT_MEM_LIMIT": "1G", "CODEPILOT_CPU_LIMIT": "0.5", "CODEPILOT_PIDS_LIMIT": "none"}
    )
    assert settings.limits == Limits(1 << 30, 0.5, None)
    assert IsolationSettings.from_env({}).limits == Limits(2 << 30, 1.0, 1024)
    assert not IsolationSettings.from_env({"CODEPILOT_ISOLATION": "false"}).enabled
    for bad in (
        {"CODEPILOT_MEM_LIMIT": "big"},
        {"CODEPILOT_CPU_LIMIT": "0"},
        {"CODEPILOT_PIDS_LIMIT": "3"},
        {"CODEPILOT_PIDS_LIMIT": "1.5"},
    ):
        with pytest.raises(SettingsError) as error:
            IsolationSettings.from_env(bad)
        assert next(iter(bad)) in str(error.value) or "limit" in str(error.value)
    assert "OFF" in IsolationSettings().banner(is_root=False)


def test_the_allow_list_holds_the_hubs_loopback_services():
    env = {
        "CODEPILOT_HUB_PORT": "9081",
        "CODEPILOT_PREVIEW_API_PORT": "9083",
        "CODEPILOT_BROKER_PORT": "9082",
        "CODEPILOT_S3_BUCKET": "b",
        "CODEPILOT_S3_ENDPOINT_URL": "http://127.0.0.1:9999",
    }
    settings = OneMachineSettings.from_env(env)
    assert server_loopback_ports(settings, env) == [9081, 9083, 9999]
    with_broker = {**env, "CODEPILOT_S3_ROLE_ARN": "arn:aws:iam::1:role/x"}
    assert 9082 in server_loopback_ports(OneMachineSettings.from_env(with_broker), with_broker)
    assert loopback_url_port("https://s3.amazonaws.com") is None
    assert loopback_url_port("http://localhost") == 80


def test_the_hubs_rules_name_only_its_own_links():
    ruleset = netns.hub_ruleset("abc123", "172.30.0.0/16", [8081, 8083])
    assert "table ip codepilot_abc123" in ruleset
    assert ruleset.count('"cpabc123h*"') >= 8
    assert "elements = { 8081, 8083 }" in ruleset
    assert "169.254.0.0/16 drop" in ruleset
    assert "snat to 172.30.0.1" in ruleset  # the hub's connections come from the gateway
    with pytest.raises(ValueError):
        netns.hub_ruleset("abc123", "172.30.0.0/16", [70000])
    with pytest.raises(ValueError):
        netns.hub_ruleset("x; rm -rf /", "172.30.0.0/16", [])


def test_a_servers_network_from_its_slot():
    network = netns.ServerNetwork.for_slot("abc123", "172.30.0.0/16", 5)
    assert (network.name, network.host_link) == ("cp-abc123-5", "cpabc123h5")
    assert (network.host_address, network.address) == ("172.30.0.1", "172.30.0.22")
    assert len(netns.ServerNetwork.for_slot("abc123", "172.30.0.0/16", 16383).host_link) <= 15
    assert netns.ServerNetwork.from_state(network.to_state()) == network
    with pytest.raises(ValueError):
        netns.ServerNetwork.from_state({**network.to_state(), "name": "x y"})
    script = netns.setup_script(network, [8081], 8888)
    assert "dnat to 172.30.0.1" in script  # the hub's gateway, shared by its namespaces
    assert "addr add 172.30.0.22/30 dev eth0" in script
    assert script.count("addr add") == 1  # none on the machine's side
    assert "tcp dport 8888 accept" in script
    assert netns.teardown_batch(network) == "link del cpabc123h5\nnetns del cp-abc123-5\n"


def test_cgroup_limits_for_both_versions():
    limits = Limits(512 << 20, 1.5, 100)
    assert ("memory", "memory.oom.group", "1") in limit_files(2, limits)
    assert ("cpu", "cpu.max", "150000 100000") in limit_files(2, limits)
    assert ("cpu", "cpu.cfs_quota_us", "150000") in limit_files(1, limits)
    assert ("pids", "pids.max", "100") in limit_files(1, limits)
    assert limit_files(1, Limits()) == []
    assert oom_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n") == 3
    mounts = (
        "cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n"
        "cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,cpu,cpuacct 0 0\n"
        "cgroup /sys/fs/cgroup/pids cgroup rw,pids 0 0\n"
    )
    assert find_hierarchy(mounts) == Hierarchy(
        1,
        {
            "memory": "/sys/fs/cgroup/memory",
            "cpu": "/sys/fs/cgroup/cpu,cpuacct",
            "pids": "/sys/fs/cgroup/pids",
        },
    )


def test_the_stop_notice_is_escaped():
    assert stop_notice("") == ""
    assert "&lt;script&gt;" in stop_notice("<script>")

"""Servers forked from the fork server keep every guarantee of a plain start.

The real fork server (``server_extension.startup.forkserver``) driven by the hub's own client,
and real hubs whose servers it forks: each child is its user's alone (ids, environment,
descriptors, random seeds, no other user's token in its memory), a hub restart finds
and stops five running servers, and a fork server that dies mid-spawn or cannot import
the stack gives a plain start and a log line that says why.
"""

import asyncio
import contextlib
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import requests

from codepilot_contracts.namespaces import SandboxEntry
from codepilot_spawner.onemachine.forkclient import ForkServer, fork_request
from codepilot_spawner.onemachine.processes import TAG_VARIABLE, tagged_pids

from .support.hubtools import REPO_ROOT, server_state, start_hub, wait_until
from .support.isolationtools import leftovers, namespace_inode, process_namespace_inode
from .support.terminals import run_in_terminal

pytestmark = pytest.mark.integration

FORK_SERVER_MODULE = b"server_extension.startup.forkserver"
PLAIN_LAUNCHER = b"server_extension.startup.singleuser"


def parent_pid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        try:
            pid = parent_pid(pid)
        except OSError:
            return False
    return False


def only_its_processes(tag: str, server_pid: int) -> bool:
    """The server and what it started carry its tag; nothing else does."""
    pids = tagged_pids(tag)
    return server_pid in pids and all(descends_from(pid, server_pid) for pid in pids)


def command_line(pid: int, missing: bytes | None = None) -> bytes:
    """The process's argv as /proc shows it; ``missing`` if it has ended (else the error)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        if missing is None:
            raise
        return missing


def proc_environ(pid: int) -> dict:
    entries = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(entry.decode().split("=", 1) for entry in entries if entry)


def status_ids(pid: int) -> dict:
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return {
        "uid": [int(value) for value in fields["Uid"].split()],
        "gid": [int(value) for value in fields["Gid"].split()],
        "groups": sorted(int(value) for value in fields["Groups"].split()),
    }


def descriptor_targets(pid: int) -> dict[int, str]:
    targets = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            targets[int(name)] = os.readlink(f"/proc/{pid}/fd/{name}")
    return targets


def fork_servers_of(hub_pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if FORK_SERVER_MODULE in command_line(int(entry)) and (
                    parent_pid(int(entry)) == hub_pid
                ):
                    found.append(int(entry))
            except OSError:
                continue
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


def answers(hub, user: str) -> bool:
    token = hub.user_token(user)
    reply = requests.get(
        f"{hub.server_url(user)}api/status", headers={"Authorization": f"token {token}"}
    )
    return reply.status_code == 200


# --- what a start imports ------------------------------------------------------------


def run_start_check(root: Path, *options: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-P", "-m", "tests.support.startcheck", str(root), *options],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_server_start_never_uses_the_deferred_grammar_and_checks_still_answer(tmp_path):
    deferred = run_start_check(tmp_path)
    eager = run_start_check(tmp_path, "--no-defer")
    for run in (deferred, eager):
        assert {"jupyterlab", "jupyter_server_terminals", "server_extension"} <= set(
            run["extensions"]
        )
        # Events were emitted, so validated by jupyter_events' jsonschema validators.
        assert any("'action': 'save'" in event for event in run["events"])
    assert deferred["deferred_after_start"] == {"rfc3987_syntax": True}
    assert eager["deferred_after_start"] == {"rfc3987_syntax": False}
    # The first iri check loads the real module, and answers as without deferral.
    assert deferred["iri"] == eager["iri"] == [True, False, False, True]
    assert deferred["deferred_after_check"] == {"rfc3987_syntax": False}


def test_a_start_imports_only_what_the_fork_server_preloaded(tmp_path):
    # A module a forked server imports itself costs it memory the others do not share.
    start = run_start_check(tmp_path, "--preload")
    assert start["preload"] == {"failed": [], "imported_after": []}
    # Nor does it read package metadata: the fork server read the entry points once.
    assert start["metadata_files_read"] == 0
    assert run_start_check(tmp_path)["metadata_files_read"] > 0  # as a plain start does
    # JupyterLab's Extension Manager cannot install into a workspace server's environment
    # (and its PyPI client was the largest import left): read-only.
    assert start["extension_manager"] == ["readonly"]


def test_only_installed_modules_are_deferred_and_a_failing_one_fails_every_time():
    code = """
import sys
from server_extension.startup.deferred import defer_unused_imports, is_deferred
sys.path.insert(0, sys.argv[1])
deferred = {"a_module_nobody_installed": ("f",), "failing_module": ("f",), "package": ()}
print(defer_unused_imports(deferred))
try:
    import a_module_nobody_installed
except ModuleNotFoundError:
    print("not installed")
import package.submodule
print(package.submodule.VALUE, is_deferred("package"), package.LOADED, is_deferred("package"))
from failing_module import f
for attempt in range(2):
    try:
        f()
    except RuntimeError as error:
        print(error, is_deferred("failing_module"))
"""
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "failing_module.py").write_text("raise RuntimeError('broken at import')\n")
        Path(folder, "package").mkdir()
        Path(folder, "package", "__init__.py").write_text("LOADED = 'loaded'\n")
        Path(folder, "package", "submodule.py").write_text("VALUE = 'sub'\n")
        done = subprocess.run(
            [sys.executable, "-P", "-c", code, folder], capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "['failing_module', 'package']",
        "not installed",
        "sub True loaded False",  # a submodule loads alone; a name of the package loads it
        "broken at import True",
        "broken at import True",
    ]


# --- the fork server itself, with the hub's client -----------------------------------


@pytest.fixture
def nobodys_folder():
    """A private folder of ``nobody``'s (the probes run as nobody), removed afterwards."""
    nobody = pwd.getpwnam("nobody")
    out = Path(tempfile.mkdtemp(prefix="codepilot-forkprobe-"))  # 0700
    os.chown(out, nobody.pw_uid, nobody.pw_gid)
    yield out
    shutil.rmtree(out, ignore_errors=True)


@pytest.mark.root
def test_a_forked_child_gets_its_own_request_and_nothing_of_anothers(nobodys_folder):
    out = nobodys_folder
    nobody = pwd.getpwnam("nobody")
    tokens = {name: os.urandom(16).hex() for name in ("alice", "bob")}
    envs = {
        "alice": {"PATH": os.defpath, "JUPYTERHUB_API_TOKEN": tokens["alice"], "TMPDIR": str(out)},
        "bob": {"PATH": os.defpath, "JUPYTERHUB_API_TOKEN": tokens["bob"]},
        # Looks for its own token: shows the memory search finds what is there.
        "control": {"PATH": os.defpath, "JUPYTERHUB_API_TOKEN": tokens["alice"]},
    }
    secrets = {"alice": tokens["bob"], "bob": tokens["alice"], "control": tokens["alice"]}

    async def fork_all():
        server = ForkServer()
        server.start()
        try:
            pids = {}
            for name, env in envs.items():
                env = {**env, TAG_VARIABLE: f"probe-{name}"}
                secret = secrets[name]
                # -P as the server launcher has it: the working directory stays off sys.path.
                flags = ["-P"] if name == "alice" else []
                argv = [
                    sys.executable,
                    *flags,
                    "-m",
                    "tests.support.forkprobe",
                    f"{out}/{name}.json",
                ]
                argv += [secret[:16], secret[16:]]
                pids[name] = await server.spawn(fork_request(argv, env, REPO_ROOT, nobody))
            return pids, server.pid
        finally:
            server.close()

    pids, fork_server_pid = asyncio.run(fork_all())
    records = {}
    for name in envs:
        path = out / f"{name}.json"
        wait_until(lambda path=path: path.exists() and path.stat().st_size, 60, 0.2, str(path))
        records[name] = json.loads(path.read_text())

    assert len({fork_server_pid, *pids.values()}) == 4
    for name, record in records.items():
        expected = {**envs[name], TAG_VARIABLE: f"probe-{name}"}
        assert record["environ"] == expected
        # What /proc shows, which finds a server's processes, is that environment too.
        assert record["proc_environ"] == [f"{key}={value}" for key, value in expected.items()]
        assert sorted(record["descriptors"]) == ["0", "1", "2"]
        assert record["descriptors"]["0"] == "/dev/null"
        uid, gid = nobody.pw_uid, nobody.pw_gid
        assert record["ids"] == [uid, uid, gid, gid, sorted(os.getgrouplist("nobody", gid))]
        assert record["session_leader"]
        assert record["cwd"] == str(REPO_ROOT)
    assert not records["alice"]["holds_secret"]
    assert not records["bob"]["holds_secret"]
    assert records["control"]["holds_secret"]
    assert len({record["random"] for record in records.values()}) == 3
    assert records["alice"]["tempdir"] == str(out)
    assert records["bob"]["tempdir"] == "/tmp"
    assert str(REPO_ROOT) not in records["alice"]["path"][:1]
    assert records["bob"]["path"][0] == str(REPO_ROOT)  # ``python -m`` without -P
    assert len({record["temp_name"] for record in records.values()}) == 3


def child_syscalls(trace: Path, pid: int) -> list[str]:
    """The calls ``pid`` made, in order, from an ``strace -f -o`` file."""
    calls = []
    for line in trace.read_text().splitlines():
        head, _, call = line.partition(" ")
        if head != str(pid):
            continue
        call = " ".join(call.split())  # strace pads before " = result"
        if call.startswith("<... "):  # the end of a call another process interrupted
            continue
        calls.append(call.replace(" <unfinished ...>", ")"))
    return calls


@pytest.mark.root
@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_a_child_holds_nothing_of_the_hubs_once_its_user_may_reach_it(nobodys_folder):
    """Between the uid change and the exec-like end, another process of the same user
    could open the child's descriptors (pidfd_getfd) if it were dumpable: the request
    pipe (the next user's start, with their token) must be gone before the uid changes,
    and the child stays undumpable until the reply pipe is closed too."""
    trace = nobodys_folder / "fork-server.strace"
    calls = "setuid,setresuid,dup2,dup3,close,prctl,write"
    command = ["strace", "-f", "-qq", "-e", f"trace={calls}", "-o", str(trace)]
    nobody = pwd.getpwnam("nobody")
    out = nobodys_folder / "probe.json"

    async def fork_one():
        server = ForkServer(
            [*command, sys.executable, "-P", "-s", "-m", "server_extension.startup.forkserver"]
        )
        server.start()
        try:
            argv = [sys.executable, "-m", "tests.support.forkprobe", str(out), "x" * 8, "y" * 8]
            env = {"PATH": os.defpath, TAG_VARIABLE: "probe-strace"}
            return await server.spawn(fork_request(argv, env, REPO_ROOT, nobody))
        finally:
            server.close()

    pid = asyncio.run(fork_one())
    wait_until(lambda: out.exists() and out.stat().st_size, 60, 0.2, str(out))
    calls = child_syscalls(trace, pid)

    def first(prefix: str, after: int = 0) -> int:
        return next(i for i, call in enumerate(calls) if i >= after and call.startswith(prefix))

    uid_change = first("setuid(")
    # /dev/null onto 0: the request pipe is gone.
    stdin_replaced = next(i for i, call in enumerate(calls) if re.match(r"dup2\(\d+, 0\)", call))
    assert stdin_replaced < uid_change, calls[: uid_change + 1]
    reply = first("write(", after=uid_change)
    assert '\\"pid\\"' in calls[reply], calls[reply]
    reply_fd = calls[reply].split("(", 1)[1].split(",", 1)[0]
    reply_closed = first(f"close({reply_fd})", after=reply)
    dumpable = next(
        i
        for i, call in enumerate(calls)
        if re.match(r"prctl\(PR_SET_DUMPABLE, (1|SUID_DUMP_USER)\)", call)
    )
    assert reply_closed < dumpable, calls[uid_change : dumpable + 1]


@pytest.mark.root
def test_the_hub_takes_no_reply_that_is_not_for_its_request():
    """A reply with another request's id (a forged or stray line) is never a server."""
    forged = (
        "import json, sys\n"
        "print(json.dumps({'ready': True}), flush=True)\n"
        "sys.stdin.buffer.read(4)\n"
        "print(json.dumps({'id': 999, 'pid': 1}), flush=True)\n"
        "sys.stdin.buffer.read()\n"
    )

    async def run():
        server = ForkServer([sys.executable, "-c", forged])
        server.start()
        try:
            with pytest.raises(Exception, match="another request"):
                await server.spawn(fork_request([sys.executable, "-m", "this"], {}, "/"))
            return server.process
        finally:
            server.close()

    assert asyncio.run(run()) is None  # discarded: never used again


@pytest.mark.root
def test_a_request_it_cannot_run_in_process_is_refused_and_it_goes_on():
    async def run():
        server = ForkServer()
        server.start()
        try:
            refused = fork_request([sys.executable, "-c", "pass"], {}, "/")
            with pytest.raises(Exception, match="cannot run"):
                await server.spawn(refused)
            # An option whose effect a child cannot give (-I: no PYTHON* variables read).
            isolated = fork_request([sys.executable, "-I", "-m", "this"], {}, "/")
            with pytest.raises(Exception, match="cannot run"):
                await server.spawn(isolated)
            missing = SandboxEntry(procs_files=("/nonexistent/cgroup.procs",))
            bad_cgroup = fork_request([sys.executable, "-m", "this"], {}, "/", sandbox=missing)
            bad_cgroup["uid"], bad_cgroup["gid"], bad_cgroup["groups"] = 0, 0, [0]
            with pytest.raises(Exception, match="nonexistent"):
                await server.spawn(bad_cgroup)
            return server.process.poll()
        finally:
            server.close()

    assert asyncio.run(run()) is None  # still running after both


# --- a hub whose servers it forks ------------------------------------------------------


@pytest.fixture(scope="module")
def hub():
    running = start_hub()
    yield running
    running.stop()


@pytest.mark.root
def test_forked_servers_are_their_users_own(hub):
    states, pids = {}, {}
    for user in ("alice", "bob"):
        hub.create_user(user)
        hub.start_server(user)
        states[user] = server_state(hub, user)
        pids[user] = states[user]["pid"]
    fork_server = parent_pid(pids["alice"])
    assert FORK_SERVER_MODULE in command_line(fork_server)
    assert parent_pid(pids["bob"]) == fork_server
    fork_pipes = {t for t in descriptor_targets(fork_server).values() if t.startswith("pipe:")}
    for user, other in (("alice", "bob"), ("bob", "alice")):
        pid, state = pids[user], states[user]
        account = pwd.getpwnam(hub.account(user))
        ids = status_ids(pid)
        assert ids["uid"] == [account.pw_uid] * 4
        assert ids["gid"] == [account.pw_gid] * 4
        assert ids["groups"] == sorted(os.getgrouplist(account.pw_name, account.pw_gid))
        assert process_namespace_inode(pid) == namespace_inode(state["netns"])
        assert state["cgroup"]["path"] in Path(f"/proc/{pid}/cgroup").read_text()
        environ = proc_environ(pid)
        assert environ[TAG_VARIABLE] == state["process_tag"]
        assert environ["JUPYTERHUB_USER"] == user
        assert proc_environ(pids[other])["JUPYTERHUB_API_TOKEN"] not in environ.values()
        assert "CODEPILOT_FORK_ENVIRONMENT_SPACE" not in environ
        targets = descriptor_targets(pid)
        assert targets[0] == "/dev/null"
        assert not fork_pipes & set(targets.values())  # none of the fork server's pipes
        assert only_its_processes(state["process_tag"], pid)
    with hub.open_terminal("alice", hub.user_token("alice")) as ws:
        output = run_in_terminal(
            ws,
            "setsid nohup sleep 600 >/dev/null 2>&1 & "
            "echo tag-$WORKSPACE_PROCESS_TAG space-${CODEPILOT_FORK_ENVIRONMENT_SPACE:-none}"
            " user-$(id -un)",
            f"space-none user-{hub.account('alice')}",
        )
    assert f"tag-{states['alice']['process_tag']}" in output
    assert "Spawning alice from the fork server" in hub.log()
    assert "as a plain process" not in hub.log()

    # Stopping a forked server ends what it started, even what left its session.
    # The shell echoes before its background job has exec'd sleep, so wait for it.
    def escaped_processes() -> list[int]:
        return [pid for pid in tagged_pids(states["alice"]["process_tag"]) if pid != pids["alice"]]

    wait_until(
        lambda: any(b"sleep" in command_line(pid, missing=b"") for pid in escaped_processes()),
        timeout=10,
        message="the escaped sleep",
    )
    escaped = escaped_processes()
    hub.stop_server("alice")
    assert not any(alive(pid) for pid in [pids["alice"], *escaped])
    assert leftovers(states["alice"]) == []


@pytest.mark.root
def test_a_hub_restart_finds_and_stops_five_forked_servers():
    hub = start_hub()
    users = [f"class{number}" for number in range(5)]
    try:
        for user in users:
            hub.create_user(user)
            assert hub.api("POST", f"/users/{user}/server").status_code in (201, 202)
        for user in users:
            hub.wait_ready(user, timeout=120)
        states = {user: server_state(hub, user) for user in users}
        old_fork_servers = fork_servers_of(hub.process.pid)
        assert len(old_fork_servers) == 1
        assert all(parent_pid(s["pid"]) == old_fork_servers[0] for s in states.values())

        hub.stop(keep_servers=True)
        # The fork server ends with its hub; the servers it forked do not.
        wait_until(lambda: not alive(old_fork_servers[0]), 30, 0.2, "the old fork server to end")
        assert all(alive(state["pid"]) for state in states.values())

        hub = start_hub(data_dir=hub.data_dir, env=hub.env)
        for user in users:
            assert hub.wait_ready(user, timeout=60)
            assert server_state(hub, user)["pid"] == states[user]["pid"]
            assert answers(hub, user)
        for user in users:
            hub.stop_server(user)
        for state in states.values():
            assert not alive(state["pid"])
            assert leftovers(state) == []
    finally:
        hub.stop()


@pytest.mark.root
def test_a_fork_server_killed_mid_spawn_gives_a_plain_start():
    hub = start_hub()
    try:
        for user in ("early", "late", "later"):
            hub.create_user(user)
        hub.start_server("early")
        early = server_state(hub, "early")
        fork_server = parent_pid(early["pid"])
        # Frozen with its idle child, the request waits in the pipe; then both die.
        os.killpg(fork_server, signal.SIGSTOP)
        assert hub.api("POST", "/users/late/server").status_code in (201, 202)
        wait_until(lambda: "Spawning late from the fork server" in hub.log(), 60, 0.2, "fork")
        os.killpg(fork_server, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):  # all gone, and reaped, already
            os.killpg(fork_server, signal.SIGCONT)

        hub.wait_ready("late", timeout=120)
        late = server_state(hub, "late")
        log = hub.log()
        assert "Fork server could not start late" in log
        assert "starting it as a plain process" in log
        assert PLAIN_LAUNCHER in command_line(late["pid"])
        assert only_its_processes(late["process_tag"], late["pid"])  # one server, not two
        assert answers(hub, "late")
        assert answers(hub, "early")  # a server it forked before does not care

        # The next start gets a new fork server.
        hub.start_server("later")
        later = server_state(hub, "later")
        assert FORK_SERVER_MODULE in command_line(parent_pid(later["pid"]))
        assert parent_pid(later["pid"]) != fork_server
        for user in ("early", "late", "later"):
            hub.stop_server(user)
        for state in (early, late, later):
            assert leftovers(state) == []
    finally:
        hub.stop()


@pytest.mark.root
def test_a_broken_environment_gives_a_plain_start_and_says_why(tmp_path):
    extra = tmp_path / "broken_fork_server.py"
    broken = [sys.executable, "-c", "import a_module_the_server_stack_lacks"]
    extra.write_text(f"c.CodePilotLocalSpawner.fork_server_command = {broken!r}\n")
    hub = start_hub(env={"CODEPILOT_HUB_EXTRA_CONFIG": str(extra)})
    try:
        hub.create_user("carol")
        hub.start_server("carol")
        state = server_state(hub, "carol")
        assert "Fork server could not start carol (it exited (status 1))" in hub.log()
        assert PLAIN_LAUNCHER in command_line(state["pid"])
        assert answers(hub, "carol")
        hub.stop_server("carol")
        assert leftovers(state) == []

        # A student's files named like the server's modules do not replace them: the
        # launcher keeps the workspace, its working directory, off sys.path.
        workspace = hub.data_dir / "workspaces" / "carol" / "default"
        assert workspace.is_dir()
        for module in ("tornado", "jupyter_server", "jupyterhub"):
            (workspace / f"{module}.py").write_text("raise SystemExit('shadowed')\n")
        hub.start_server("carol")
        state = server_state(hub, "carol")
        assert PLAIN_LAUNCHER in command_line(state["pid"])
        assert answers(hub, "carol")
        hub.stop_server("carol")
    finally:
        hub.stop()

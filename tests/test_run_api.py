"""The Run button's server side against a real jupyter-server: ``codepilot/api/run``
starts the project's command as a terminal of the server, every viewer shares its output
and input, Stop ends every process of the run (checked from /proc), a crash keeps its
exit code and last output, and the bad inputs of the issue (a malformed codepilot.toml, a
command that does not exist, 50 MB of output, Run twice at once, Stop while starting)."""

import json
import os
import secrets
import threading
import time
from pathlib import Path

import pytest
import requests
from websockets.exceptions import ConnectionClosed

from server_extension.run.processes import descendants
from server_extension.terminalsocket import REPLAY_RESET, SLOW_VIEWER_CLOSE_CODE

from .support.hubtools import free_port
from .support.jupyterserver import start_jupyter_server
from .support.procfs import alive, pids_with_command_line
from .support.terminals import connect_terminal

pytestmark = pytest.mark.integration

SCROLLBACK_CHARS = 200_000
BACKLOG_BYTES = 1_000_000
SERVE = "python -m http.server $PORT --bind 127.0.0.1"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("project")
    port = free_port()
    running = start_jupyter_server(
        root,
        env={"CODEPILOT_PREVIEW_PORT": str(port)},
        args=(
            f"--ProjectRun.scrollback_chars={SCROLLBACK_CHARS}",
            "--ProjectRun.stop_timeout=1",
            f"--CodePilot.terminal_backlog_bytes={BACKLOG_BYTES}",
        ),
    )
    running.app_port = port
    yield running
    running.api("DELETE", "/codepilot/api/run")
    running.stop()


@pytest.fixture
def run(server):
    """Start each test with no run alive and no codepilot.toml or .replit."""
    server.api("DELETE", "/codepilot/api/run").raise_for_status()
    for name in ("codepilot.toml", ".replit"):
        (server.root / name).unlink(missing_ok=True)
    return server


def use(server, command: str) -> None:
    (server.root / "codepilot.toml").write_text(f"[run]\ncommand = {json.dumps(command)}\n")


def call(server, method: str, body: dict | None = None) -> dict:
    response = server.api(method, "/codepilot/api/run", data=json.dumps(body) if body else None)
    response.raise_for_status()
    return response.json()


def wait_for(server, predicate, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        model = call(server, "GET")
        if predicate(model):
            return model
        if time.monotonic() > deadline:
            raise TimeoutError(f"run never got there: {model}")
        time.sleep(0.1)


def read_until(ws, marker: str, timeout: float = 20) -> str:
    output = ""
    deadline = time.monotonic() + timeout
    while marker not in output:
        message = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        if message[0] == "stdout":
            output += message[1]
    return output


def test_nothing_runs_at_first_and_run_says_what_it_would_start(run):
    use(run, "python main.py")
    model = call(run, "GET")
    assert (model["state"], model["label"], model["terminal"], model["run"]) == (
        "stopped",
        "Stopped",
        None,
        None,
    )
    assert model["next"] == {
        "kind": "command",
        "command": "python main.py",
        "source": "codepilot.toml",
        "cwd": "",
        "env": {},
    }


def test_run_needs_the_servers_auth(run):
    response = requests.post(f"{run.url}/codepilot/api/run", timeout=10)
    assert response.status_code in (401, 403)
    assert call(run, "GET")["run"] is None or call(run, "GET")["terminal"] is None


def test_run_serves_on_port_and_every_viewer_shares_output_and_input(run):
    use(run, f'read -p "name? " who; echo "hello $who"; {SERVE}')
    started = call(run, "POST")
    assert started["state"] == "starting" and started["terminal"] == "run"
    assert started["command"].startswith("read -p") and started["pid"] > 0
    student = connect_terminal(f"{run.url}/", run.token, "run")
    teacher = connect_terminal(f"{run.url}/", run.token, "run")
    try:
        read_until(student, "name? ")
        read_until(teacher, "name? ")  # replayed to a late viewer too
        teacher.send(json.dumps(["stdin", "ana\r"]))
        assert "hello ana" in read_until(student, "hello ana")
        assert "hello ana" in read_until(teacher, "hello ana")
        model = wait_for(run, lambda m: m["state"] == "running")
        assert model["listening_port"] == run.app_port
        page = requests.get(f"http://127.0.0.1:{run.app_port}/", timeout=10)
        assert page.status_code == 200
    finally:
        student.close()
        teacher.close()


def test_the_run_has_a_terminals_environment_and_its_cwd_and_env(run):
    (run.root / "web").mkdir(exist_ok=True)
    (run.root / "codepilot.toml").write_text(
        '[run]\ncommand = "echo at=$(pwd) port=$PORT term=$TERM greeting=$GREETING; sleep 30"\n'
        'cwd = "web"\n[run.env]\nGREETING = "hi"\n'
    )
    call(run, "POST")
    ws = connect_terminal(f"{run.url}/", run.token, "run")
    try:
        output = read_until(ws, "greeting=hi")
    finally:
        ws.close()
    assert f"at={run.root / 'web'} port={run.app_port} term=xterm-256color" in output


# Processes that leave the run's session: a double-forked ``setsid`` sleeper, and others
# that also ignore SIGTERM and SIGHUP (SIGKILL only ends them). Their command lines are
# this module's own, so /proc tells them from any other test's.
MARK = f"{secrets.randbelow(10**6):06}"
ESCAPED = tuple(("sleep", f"{seconds}.{MARK}") for seconds in (3041, 3042, 3043))
ESCAPERS = (
    f"setsid sh -c 'sleep 3041.{MARK} & exit' & "
    f"setsid sh -c \"trap '' TERM HUP; exec sleep 3042.{MARK}\" & "
    f"(setsid sh -c \"trap '' TERM HUP; sleep 3043.{MARK} & exit\" &) & "
)


def test_stop_ends_every_process_of_the_run(run):
    # Background jobs, a subshell, processes in sessions of their own, and all of them
    # ignoring SIGTERM and SIGHUP, the command's shell too: SIGKILL ends them.
    use(
        run,
        f"trap '' TERM HUP; sleep 300 & (sleep 301; true) & sh -c 'sleep 302' & {ESCAPERS}{SERVE}",
    )
    pid = call(run, "POST")["pid"]
    wait_for(run, lambda m: m["listening_port"] is not None)
    # Found by their command lines, not by the code under test.
    escaped = poll_pids(ESCAPED)
    assert {os.getsid(member) for member in escaped} != {os.getsid(pid)}
    members = descendants(pid)
    assert len(members) >= 6, members  # bash, the sleeps, the subshell, python
    started = time.monotonic()
    stopped = call(run, "DELETE")
    assert (stopped["state"], stopped["label"], stopped["terminal"]) == ("stopped", "Stopped", None)
    assert time.monotonic() - started < 5
    assert [member for member in members + escaped if alive(member)] == []
    assert [argv for argv in ESCAPED if pids_with_command_line(*argv)] == []
    assert not alive(pid) and descendants(pid) == []
    assert (
        requests.get(
            f"{run.url}/api/terminals", headers={"Authorization": f"token {run.token}"}, timeout=10
        ).json()
        == []
    )


REPLIT_MAIN = 'echo "PATH starts ${PATH%%:*}"\necho "greeting $GREETING"\n'


def test_a_replit_project_runs_with_its_run_command_and_env(run):
    """Files as Replit exports them: ``.replit`` names the command (the list form) and
    ``[env]`` (with ``${REPL_HOME}`` and a PATH put before the inherited one)."""
    (run.root / "show_env.sh").write_text(REPLIT_MAIN)
    (run.root / ".replit").write_text(
        'run = ["sh", "show_env.sh"]\nentrypoint = "show_env.sh"\n\n[env]\n'
        'VIRTUAL_ENV = "${REPL_HOME}/venv"\nPATH = "${VIRTUAL_ENV}/bin"\n'
        'GREETING = "hello from $REPL_HOME"\n'
    )
    assert call(run, "GET")["next"]["source"] == ".replit"
    first = call(run, "POST")["run"]["number"]
    model = wait_for(run, lambda m: m["state"] != "starting")
    assert (model["label"], model["command"]) == ("Stopped", "sh show_env.sh")
    assert f"PATH starts {run.root}/venv/bin" in model["run"]["tail"]
    assert f"greeting hello from {run.root}" in model["run"]["tail"]
    # Replit's Run with no run command: the entrypoint, by its suffix.
    (run.root / ".replit").write_text('entrypoint = "show_env.sh"\n[env]\nGREETING = "hi"\n')
    call(run, "POST")
    model = wait_for(run, lambda m: m["run"]["number"] > first and m["state"] != "starting")
    assert model["command"] == "bash show_env.sh"
    assert "greeting hi" in model["run"]["tail"]
    # A bad .replit is named with its line, and nothing starts.
    (run.root / ".replit").write_text('entrypoint = "show_env.sh"\n[env]\nGREETING = true\n')
    model = call(run, "POST")
    assert (
        model["problem"]["message"] == ".replit, line 3: env.GREETING must be a string or a number"
    )
    assert model["run"]["number"] == first + 1


def test_closing_the_runs_terminal_from_jupyterlab_stops_the_run(run):
    # JupyterLab's Running panel shuts a terminal down with DELETE /api/terminals/<name>.
    use(run, f"{ESCAPERS}{SERVE}")
    pid = call(run, "POST")["pid"]
    wait_for(run, lambda m: m["listening_port"] is not None)
    members = descendants(pid) + poll_pids(ESCAPED)
    run.api("DELETE", "/api/terminals/run").raise_for_status()
    assert [member for member in [pid, *members] if alive(member)] == []
    assert call(run, "GET")["label"] == "Stopped"


def poll_pids(command_lines, timeout: float = 20) -> list[int]:
    """The pids of one living process for each command line, once all are there."""
    deadline = time.monotonic() + timeout
    while True:
        found = [pids_with_command_line(*argv) for argv in command_lines]
        if all(found):
            return [pid for pids in found for pid in pids]
        if time.monotonic() > deadline:
            raise TimeoutError(f"not all started: {dict(zip(command_lines, found, strict=True))}")
        time.sleep(0.05)


def test_a_crash_keeps_its_exit_code_and_last_output(run):
    use(run, "echo 'Traceback: something broke'; exit 3")
    call(run, "POST")
    model = wait_for(run, lambda m: m["state"] != "starting")
    assert (model["state"], model["label"], model["exit_code"]) == (
        "crashed",
        "Crashed (exit 3)",
        3,
    )
    assert "Traceback: something broke" in model["run"]["tail"]
    assert model["terminal"] is None


def test_a_finished_run_is_stopped_not_crashed(run):
    use(run, "echo done")
    call(run, "POST")
    model = wait_for(run, lambda m: m["state"] != "starting")
    assert (model["state"], model["exit_code"], model["run"]["tail"].strip()) == (
        "stopped",
        0,
        "done",
    )


def test_a_command_that_does_not_exist_crashes_with_127(run):
    use(run, "no-such-command-here --port $PORT")
    call(run, "POST")
    model = wait_for(run, lambda m: m["state"] != "starting")
    assert model["label"] == "Crashed (exit 127)"
    assert "no-such-command-here: command not found" in model["run"]["tail"]


def test_a_malformed_codepilot_toml_is_named_and_nothing_starts(run):
    (run.root / "codepilot.toml").write_text('[run]\ncommand = "npm run dev\n')
    before = call(run, "GET")["run"]
    model = call(run, "POST")
    assert model["state"] != "running" and model["terminal"] is None
    assert model["run"] == before  # no new run
    assert model["problem"]["file"] == "codepilot.toml" and model["problem"]["line"] == 2
    assert model["next"]["kind"] == "problem"


def test_nothing_to_run_offers_a_guess(run):
    (run.root / "main.py").unlink(missing_ok=True)
    (run.root / "game.py").write_text("print('hi')\n")
    try:
        model = call(run, "POST")
    finally:
        (run.root / "game.py").unlink()
    assert model["terminal"] is None
    assert model["next"]["kind"] == "missing" and model["next"]["guess"] == "python game.py"
    assert "codepilot.toml" in model["problem"]["problem"]


def test_run_twice_at_once_is_one_run(run):
    use(run, SERVE)
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(call(run, "POST"))) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({answer["run"]["number"] for answer in answers}) == 1
    assert len({answer["pid"] for answer in answers}) == 1


def test_stop_while_starting_and_restart(run):
    use(run, f"sleep 1; {SERVE}")
    first = call(run, "POST")
    stopped = call(run, "DELETE")  # before it listens
    assert stopped["state"] == "stopped" and not alive(first["pid"])
    second = call(run, "POST")
    restarted = call(run, "POST", {"restart": True})
    assert restarted["run"]["number"] == second["run"]["number"] + 1, (second, restarted)
    assert not alive(second["pid"]) and alive(restarted["pid"])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_fifty_megabytes_reach_a_viewer_that_reads_and_not_one_that_does_not(run):
    """The run keeps only its scrollback; a viewer that stops reading costs the server at
    most ``terminal_backlog_bytes`` and is closed to reattach; one that reads gets the
    output to its end; the API answers throughout."""
    use(
        run,
        "read -r go; yes 'a line of output that floods the run panel' | head -c 50000000; "
        "echo; echo flood-done; sleep 60",
    )
    before = rss_kib(run.process.pid)
    call(run, "POST")
    # Never read until the flood is over: its client stops taking data off the socket
    # once one message waits, as a stalled tab does.
    stalled = connect_terminal(f"{run.url}/", run.token, "run", max_queue=1)
    viewer = connect_terminal(f"{run.url}/", run.token, "run")
    wait_for(run, lambda m: len(m["viewers"]) == 2)
    viewer.send(json.dumps(["stdin", "go\r"]))
    slowest = 0.0
    most_unsent = 0
    received = messages = reattached = 0
    deadline = time.monotonic() + 120
    try:
        done = False
        while not done and time.monotonic() < deadline:
            try:
                message = json.loads(viewer.recv(timeout=30))
            except ConnectionClosed as closed:
                # Slower than the flood on a busy machine: reattach, as JupyterLab does.
                assert closed.rcvd.code == SLOW_VIEWER_CLOSE_CODE
                reattached += 1
                viewer = connect_terminal(f"{run.url}/", run.token, "run")
                continue
            if message[0] == "stdout":
                received += len(message[1])
                done = "flood-done" in message[1]
            messages += 1
            if messages % 20 == 0:
                asked = time.monotonic()
                viewers = call(run, "GET")["viewers"]
                slowest = max(slowest, time.monotonic() - asked)
                most_unsent = max(most_unsent, *(v["unsent_bytes"] for v in viewers))
    finally:
        viewer.close()
    assert done, received
    assert reattached or received >= 50_000_000
    grown = rss_kib(run.process.pid) - before
    (behind,) = call(run, "GET")["viewers"]  # the reader has gone; the stalled one is left
    assert behind["behind"] and behind["unsent_bytes"] <= BACKLOG_BYTES
    # What the server held for it never passed the limit.
    assert 0 < most_unsent <= BACKLOG_BYTES
    # Once it reads: what it was sent, then the close that tells it to reattach.
    stalled_got = 0
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            message = json.loads(stalled.recv(timeout=30))
            stalled_got += len(message[1]) if message[0] == "stdout" else 0
    assert closed.value.rcvd.code == SLOW_VIEWER_CLOSE_CODE
    assert stalled_got < received
    # A viewer that attaches now gets the scrollback only, not 50 MB, after a reset (a
    # reattaching view starts again from empty rather than showing it twice).
    late = connect_terminal(f"{run.url}/", run.token, "run")
    try:
        replay = read_until(late, "flood-done", timeout=30)
    finally:
        late.close()
    assert replay.startswith(REPLAY_RESET) and replay.count(REPLAY_RESET) == 1
    replayed = len(replay)
    print(
        f"50 MB run: server RSS grew {grown} KiB, slowest GET {slowest:.3f}s, "
        f"most unsent to one viewer {most_unsent} bytes (limit {BACKLOG_BYTES}), "
        f"the stalled viewer got {stalled_got} chars, the reader {received} "
        f"({reattached} reattaches), replay {replayed} chars"
    )
    assert replayed <= SCROLLBACK_CHARS + 65536


def test_stopping_the_server_ends_every_process_of_the_run(tmp_path):
    """The server's stop ends the run as Stop does: a job that ignores SIGHUP and SIGINT
    (what terminado's own cleanup sends to the run's first process only) ends too."""
    port = free_port()
    server = start_jupyter_server(tmp_path, env={"CODEPILOT_PREVIEW_PORT": str(port)})
    try:
        use(server, f"nohup sleep 303 >/dev/null 2>&1 & {ESCAPERS}{SERVE}")
        pid = call(server, "POST")["pid"]
        wait_for(server, lambda m: m["listening_port"] is not None)
        members = descendants(pid) + poll_pids(ESCAPED)
        assert len(members) >= 6, members  # bash, sleep, python and the escaped sleeps
    finally:
        server.stop()
    assert [member for member in members if alive(member)] == []

"""A class at work: N students on one hub at once, typing, saving, installing, previewing.

For each N of ``--sizes`` (default 10,50,100), on one hub started as ``make up`` does:
every student's server started at the same moment (POST to ready p50/p95/max, each
following its progress stream), then, once every student has a terminal open (a lesson
starts with the IDEs open: 100 terminals opened in the same second made the first saves
wait), ``--seconds`` of a class at work through the real proxy, hub, preview gateway and
servers:

- every student types into a terminal of their server (a key every 0.3 to 0.9 s, the
  first within the first 0.9 s; the time from sending it to its echo);
- every student saves a file through the contents API every 2 to 5 s (PUT to answer);
- ``--installers`` of them (default 10%) run an install-sized burst in their terminal:
  jedi's and botocore's package trees from this venv (7,800 files, 65 MB, about the size
  of a React app's ``node_modules``) copied into the workspace's ``.venv`` and
  byte-compiled, as ``pip install`` writes and compiles, with no registry traffic;
- ``--apps`` of them (default 10%) Run an app (``codepilot.toml``: ``python3 -m
  http.server`` on ``$PORT``, a 1 KB page), fetched through the preview gateway as a
  viewer's tab would, once a second each.

Then ``--idle-seconds`` with the servers up and nothing sent. Printed per N: the figures
above as p50/p99, and when the slowest 1% of each ended (bunched, they point at one
stall of the whole machine); the hub's event-loop lag (JupyterHub's own
``event_loop_interval_seconds`` histogram from ``/hub/metrics``: its p99 bucket) at work
and idle; CPU seconds per second of the hub, the proxy and the preview gateway; PSS per
idle server and of the hub's processes; the machine's CPU busy fraction and free memory;
the generator's own event-loop lag (its figures are only as good as that) and its own
CPU over the first seconds and the whole run (the class's laptops would spend it, not
this machine: what it takes of the cores here, the class does not get); and the first
resource that ran out. Echo and save are counted apart for the installers (their own
server shares its cgroup with the install) and for the others. ``--faults`` adds three
students who misbehave: one forks until its pids limit, one fills its memory, one floods
its own preview from a process of its own, as another machine's browser would (the
requests a second it got answered are printed); ``--faults forks,memory`` names some.
As root the flood's sender runs at the least CPU weight there is: it stands for another
machine, so it sends with what the class leaves idle rather than taking a share of its
own. ``--cull-idle S`` runs the hub with ``CODEPILOT_CULL_IDLE=S`` and, after the idle
phase, waits for the idle culler to stop every server: seconds from the class's last use
to each stop, and the hub's lag and the culler's CPU meanwhile. ``--writeback``
compares the machine's writeback settings (as root): ``default`` leaves the kernel's
(background writeback from 10% of memory), a size such as ``64M`` sets
``vm.dirty_background_bytes`` for that run; what the machine had is put back at the end.
``--blocked-stacks`` (as root) counts where the servers' blocked threads wait in the
kernel (a save's fsync: its pages' writeback, an inode write, the disk's cache flush).

Every connection goes to 127.0.0.1: the resolver of ``tests/support/localhost.py``
answers ``*.localhost`` with loopback. Stops every server and the hub by itself.
"""

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from codepilot_contracts.namespaces import SandboxEntry
from codepilot_spawner.onemachine.busyservers import BusyPolicy, weight_file
from codepilot_spawner.onemachine.cgroups import (
    HUBS_PARENT,
    Limits,
    ServerCgroup,
    machine_hierarchy,
    parse_memory,
)
from codepilot_spawner.onemachine.writeback import VM, machine_writeback
from tests.benchmarks.bench_class_start import stop_all, wait_ready_event
from tests.support.hubtools import start_hub
from tests.support.procfs import command_line, cpu_seconds_of, memory_kb, process_tree
from tests.support.timing import percentile

INSTALL_TREES = " ".join(
    str(Path(__import__(name).__file__).parent) for name in ("jedi", "botocore")
)
APP_PAGE = "<!doctype html><title>class load</title>" + "<p>" + "x" * 980 + "</p>"
APP_CONFIG = '[run]\ncommand = "python3 -m http.server $PORT --bind 127.0.0.1"\n'
# Misbehaving students: the commands they type (their server's limits must hold them).
FAULTS = {
    "forks": "for i in $(seq 5000); do sleep 600 & done",
    "memory": "python3 -c 'b = []\nwhile True: b.append(bytearray(64 << 20))'",
}
FAULT_ROLES = (*FAULTS, "flood")  # the flood is sent by a process of the generator


SETTLED_AFTER_S = 10  # into the work: past the moment everything starts at once


@dataclass
class Samples:
    """Latencies in ms of one kind, when each ended, and the failures met on the way."""

    values: list[float] = field(default_factory=list)
    ended: list[float] = field(default_factory=list)  # time.monotonic() of each
    errors: Counter = field(default_factory=Counter)  # what went wrong: how often

    def took(self, sent: float) -> None:
        """One sample, sent at ``sent`` (time.perf_counter()), answered now."""
        self.values.append((time.perf_counter() - sent) * 1000)
        self.ended.append(time.monotonic())

    def failed(self, why: object) -> None:
        self.errors[why if isinstance(why, str) else type(why).__name__] += 1

    def summary(self, started: float | None = None) -> dict:
        """p50 and p99; with ``started`` (the work's start), also the p99 of what ended
        after the first ``SETTLED_AFTER_S`` (every install, app and fault starts in the
        same second, and busy servers are weighted down a second or two later), and when
        the slowest 1% (at least 5) ended, in seconds into the work: bunched, they point
        at one stall of the whole machine; spread, at the scheduler."""
        found = {"samples": len(self.values), "errors": dict(self.errors)}
        if self.values:
            found["p50_ms"] = round(statistics.median(self.values), 1)
            found["p99_ms"] = round(percentile(self.values, 0.99), 1)
        if self.values and started is not None:
            settled = [
                value
                for value, ended in zip(self.values, self.ended, strict=True)
                if ended - started >= SETTLED_AFTER_S
            ]
            if settled:
                found["settled_p99_ms"] = round(percentile(settled, 0.99), 1)
            count = max(5, len(self.values) // 100)
            slowest = sorted(zip(self.values, self.ended, strict=True), reverse=True)[:count]
            found["slowest_at_s"] = sorted(round(ended - started, 1) for _, ended in slowest)
        return found


@dataclass
class Student:
    name: str
    token: str
    server_url: str  # ends in /
    role: str = "typist"  # typist, installer, app, or a fault's name

    @property
    def headers(self) -> dict:
        return {"Authorization": f"token {self.token}"}


@dataclass
class ClassFigures:
    echo: Samples = field(default_factory=Samples)  # students not installing
    save: Samples = field(default_factory=Samples)
    installer_echo: Samples = field(default_factory=Samples)  # the installers' own
    installer_save: Samples = field(default_factory=Samples)
    preview: Samples = field(default_factory=Samples)
    install_s: list[float] = field(default_factory=list)
    own_lag: Samples = field(default_factory=Samples)
    own_cpu: dict[str, float] = field(default_factory=dict)  # CPU s/s of the generator
    flood_sender: int | None = None  # pid of the generator's process that floods
    own_cpu_began: tuple[float, float] = (0.0, 0.0)  # (monotonic, CPU s) as work began
    flood_per_s: float = 0.0  # requests the preview flood got answered
    started: float | None = None  # time.monotonic() when the work began


# --- the hub's processes and the machine ------------------------------------------------


class BlockedInServers:
    """``--blocked-stacks`` (as root): every 0.1 s, the kernel functions each blocked
    (D-state) thread of a user server's cgroup waits in, as ``/proc/<pid>/task/<tid>/stack``
    names them (the innermost two), counted by command name. A save held up by the disk
    shows where: its own pages' writeback, an inode write, the disk's cache flush. The
    sampling runs in the generator's process and costs CPU: the figures of such a run
    (the generator's own CPU first) are not comparable with others."""

    def __init__(self):
        self.waits: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            for stat in Path("/proc").glob("[0-9]*/task/*/stat"):
                try:
                    text = stat.read_text()
                    if text[text.rindex(")") + 2] != "D":
                        continue
                    process = stat.parent.parent.parent
                    if f"/{HUBS_PARENT}/" not in (process / "cgroup").read_text():
                        continue
                    frames = (stat.parent / "stack").read_text().splitlines()[:2]
                except (OSError, ValueError):
                    continue  # ended meanwhile
                where = "<".join(f.split(" ", 1)[-1].split("+")[0] for f in frames)
                self.waits[f"{text[text.index('(') + 1 : text.rindex(')')]}: {where}"] += 1

    def summary(self) -> dict[str, int]:
        return dict(self.waits.most_common(8))


def hub_parts(hub_pid: int, server_pids: set[int]) -> dict[str, set[int]]:
    """The pids of the hub, the proxy and the preview gateway (each with its children that
    are not user servers)."""
    parts = {"hub": set(), "proxy": set(), "gateway": set(), "culler": set()}
    for pid in process_tree(hub_pid) - process_tree_of(server_pids):
        line = command_line(pid)
        if b"configurable-http-proxy" in line:
            parts["proxy"].add(pid)
        elif b"services.preview" in line or b"codepilot-preview" in line:
            parts["gateway"].add(pid)
        elif b"services.culler" in line:
            parts["culler"].add(pid)
        elif b"jupyterhub" in line or b"launcher" in line:
            parts["hub"].add(pid)
    return parts


def process_tree_of(pids: set[int]) -> set[int]:
    found = set()
    for pid in pids:
        found |= process_tree(pid)
    return found


def machine_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of the machine since boot."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return sum(values) - idle, sum(values)


def writeback_wanted(setting: str, machine: tuple[int, int]) -> tuple[int, int]:
    """The pair ``--writeback``'s ``setting`` means: ``default``, what the machine had;
    ``64M``, background writeback once 64 MB are waiting."""
    if setting == "default":
        return machine
    try:
        return parse_memory(setting), 0
    except ValueError as error:
        raise ValueError(f"--writeback takes default or a size such as 64M: {error}") from None


def set_writeback(wanted: tuple[int, int]) -> None:
    """Give the machine ``wanted`` (as root), unless it has it already."""
    if machine_writeback() == wanted:
        return
    if wanted[0]:
        (VM / "dirty_background_bytes").write_text(str(wanted[0]))
    else:
        (VM / "dirty_background_ratio").write_text(str(wanted[1]))


def memory_available_mb() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    return 0


def pss_mb(pids) -> float:
    total = 0
    for pid in pids:
        try:
            total += memory_kb(pid).get("pss", 0)
        except OSError:
            continue
    return round(total / 1024, 1)


# --- the hub's event loop, from its own metrics --------------------------------------------


def loop_histogram(metrics_text: str) -> dict[float, float]:
    """Cumulative counts per upper bound of ``jupyterhub_event_loop_interval_seconds``."""
    buckets = {}
    for line in metrics_text.splitlines():
        if line.startswith("jupyterhub_event_loop_interval_seconds_bucket{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[float(bound)] = float(line.rsplit(" ", 1)[1])
    return buckets


def lag_p99_ms(before: dict[float, float], after: dict[float, float]) -> float | None:
    """The upper bound of the bucket holding the 99th percentile of the intervals measured
    between two reads, less the 50 ms the hub sleeps between measurements."""
    counts = {bound: after[bound] - before.get(bound, 0) for bound in sorted(after)}
    total = counts.get(float("inf"), 0)
    if not total:
        return None
    for bound, count in counts.items():
        if count >= 0.99 * total:
            return round(max(bound - 0.05, 0) * 1000, 1) if bound != float("inf") else None
    return None


# --- what students do --------------------------------------------------------------------


async def read_until(ws, marker: str, seconds: float) -> str:
    seen = ""
    async with asyncio.timeout(seconds):
        while marker not in seen:
            message = await ws.receive()
            if message.type != aiohttp.WSMsgType.TEXT:
                raise ConnectionError(f"terminal closed: {message.type}")
            kind, *rest = json.loads(message.data)
            if kind == "stdout":
                seen += rest[0]
    return seen


async def open_terminal(http, student: Student):
    async with http.post(f"{student.server_url}api/terminals", headers=student.headers) as r:
        r.raise_for_status()
        name = (await r.json())["name"]
    ws_url = "ws" + student.server_url[len("http") :] + f"terminals/websocket/{name}"
    ws = await http.ws_connect(ws_url, headers=student.headers, heartbeat=None)
    await ws.send_str(json.dumps(["stdin", "stty -echoctl; echo READY\r"]))
    await read_until(ws, "READY\r\n", 60)
    return ws


async def open_terminal_or_error(http, student: Student):
    try:
        return await open_terminal(http, student)
    except (aiohttp.ClientError, TimeoutError, ConnectionError) as error:
        return error


async def type_keys(ws, student: Student, figures: ClassFigures, until: float) -> None:
    """Keys typed one at a time into the student's open terminal (``ws``, or the error that
    opening it gave); each key's echo timed. Ctrl-U clears the line now and then."""
    echo = figures.installer_echo if student.role == "installer" else figures.echo
    if isinstance(ws, BaseException):
        echo.failed(ws)
        return
    typed = 0
    # Typists are not in step: a first key at a random moment of a typist's first pause,
    # not every student's in the same millisecond (the installs, apps and faults do start
    # together, the worst case for them).
    await asyncio.sleep(random.uniform(0, 0.9))
    while time.monotonic() < until:
        key = random.choice("abcdefghijklmnopqrstuvwxyz")
        sent = time.perf_counter()
        try:
            await ws.send_str(json.dumps(["stdin", key]))
            await read_until(ws, key, 10)
            echo.took(sent)
        except (aiohttp.ClientError, TimeoutError, ConnectionError) as error:
            echo.failed(error)
            break
        typed += 1
        if typed % 40 == 0:
            await ws.send_str(json.dumps(["stdin", "\x15"]))  # Ctrl-U: a fresh line
        await asyncio.sleep(random.uniform(0.3, 0.9))
    await ws.close()


async def put_file(http, student: Student, path: str, text: str) -> None:
    body = {"type": "file", "format": "text", "content": text}
    url = f"{student.server_url}api/contents/{path}"
    async with http.put(url, json=body, headers=student.headers) as response:
        response.raise_for_status()


async def save_files(http, student: Student, figures: ClassFigures, until: float) -> None:
    save = figures.installer_save if student.role == "installer" else figures.save
    version = 0
    while time.monotonic() < until:
        await asyncio.sleep(random.uniform(2, 5))
        version += 1
        text = f"# draft {version}\n" + "print('hello')\n" * random.randint(5, 200)
        sent = time.perf_counter()
        try:
            await put_file(http, student, "notes.py", text)
            save.took(sent)
        except (aiohttp.ClientError, TimeoutError) as error:
            save.failed(error)


async def install_burst(http, student: Student, figures: ClassFigures) -> None:
    """An install's worth of files written and compiled in the student's terminal."""
    try:
        ws = await open_terminal(http, student)
        started = time.perf_counter()
        command = (
            f"mkdir -p .venv/lib && cp -r {INSTALL_TREES} .venv/lib/ && "
            "python3 -m compileall -q .venv/lib >/dev/null; echo INSTALL-DONE-$?"
        )
        await ws.send_str(json.dumps(["stdin", command + "\r"]))
        await read_until(ws, "INSTALL-DONE-0", 900)
        figures.install_s.append(round(time.perf_counter() - started, 1))
        await ws.close()
    except (aiohttp.ClientError, TimeoutError, ConnectionError):
        figures.install_s.append(float("nan"))


async def start_app(http, student: Student) -> str:
    """Write the app, Run it, and return its preview URL once it answers there."""
    await put_file(http, student, "codepilot.toml", APP_CONFIG)
    await put_file(http, student, "index.html", APP_PAGE)
    run_url = f"{student.server_url}codepilot/api/run"
    async with http.post(run_url, json={}, headers=student.headers) as response:
        response.raise_for_status()
    async with asyncio.timeout(60):
        for _ in iter(int, 1):  # until the app listens: polled as the IDE polls
            if await app_listening(http, student):
                break
            await asyncio.sleep(0.5)
    url = f"{student.server_url}codepilot/api/preview"
    async with http.get(url, headers=student.headers) as response:
        response.raise_for_status()
        return (await response.json())["url"]


async def app_listening(http, student: Student) -> bool:
    async with http.get(f"{student.server_url}codepilot/api/app", headers=student.headers) as r:
        r.raise_for_status()
        return (await r.json())["listening"]


async def view_preview(http, student: Student, figures: ClassFigures, until: float) -> None:
    try:
        preview_url = await start_app(http, student)
    except (aiohttp.ClientError, TimeoutError) as error:
        figures.preview.failed(error)
        return
    while time.monotonic() < until:
        sent = time.perf_counter()
        try:
            async with http.get(preview_url, headers=student.headers) as response:
                body = await response.read()
                if response.status == 200 and b"class load" in body:
                    figures.preview.took(sent)
                else:
                    figures.preview.failed(f"HTTP {response.status}")
        except (aiohttp.ClientError, TimeoutError) as error:
            figures.preview.failed(error)
        await asyncio.sleep(1)


async def flood_preview(http, student: Student, figures: ClassFigures, until: float) -> None:
    """A student whose own page hammers its preview: 20 requests at a time, no pause, sent
    by a process of its own, as from another machine's browser: in this one's event loop
    the flood's thousands of answers a second would delay the class's echoes it times."""
    try:
        preview_url = await start_app(http, student)
    except (aiohttp.ClientError, TimeoutError):
        return
    seconds = until - time.monotonic()
    group = await asyncio.to_thread(off_machine_cgroup)
    flooder = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--flood",
        preview_url,
        "--seconds",
        str(seconds),
        env={**os.environ, "FLOOD_TOKEN": student.token},
        stdout=asyncio.subprocess.PIPE,
        preexec_fn=group and SandboxEntry(procs_files=tuple(group.procs_files)).enter,
    )
    figures.flood_sender = flooder.pid
    try:
        answered, _ = await flooder.communicate()
    finally:
        if group:
            await asyncio.to_thread(group.remove)
    figures.flood_per_s = round(int(answered or 0) / seconds, 1)


def off_machine_cgroup() -> ServerCgroup | None:
    """As root: a group whose CPU weight is the least there is, for the flood's sender.
    It stands for another machine's browser, whose CPU is not this machine's: it sends
    with what the class leaves idle, instead of taking a share as the hub's own processes
    do. None when not root."""
    hierarchy = machine_hierarchy()
    if os.geteuid() != 0 or hierarchy is None:
        return None
    # One level, so that its removal leaves nothing behind in the cgroup trees.
    group = ServerCgroup(hierarchy, "codepilot-bench-flood-sender")
    group.create(Limits())
    name, value = weight_file(hierarchy.version, True, BusyPolicy(busy_weight=0))
    (group.directory("cpu") / name).write_text(value)
    return group


async def flood(url: str, token: str, seconds: float) -> int:
    """Requests answered while 20 at a time go to ``url`` for ``seconds``."""
    until, answered = time.monotonic() + seconds, 0
    headers = {"Authorization": f"token {token}"}

    async def hammer(http):
        nonlocal answered
        while time.monotonic() < until:
            try:
                async with http.get(url, headers=headers) as response:
                    await response.read()
                    answered += 1
            except (aiohttp.ClientError, TimeoutError):
                await asyncio.sleep(0.05)

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        await asyncio.gather(*(hammer(http) for _ in range(20)))
    return answered


async def misbehave(http, student: Student) -> None:
    try:
        ws = await open_terminal(http, student)
        await ws.send_str(json.dumps(["stdin", FAULTS[student.role] + "\r"]))
    except (aiohttp.ClientError, TimeoutError, ConnectionError):
        pass  # what it does to the others is what counts


async def own_loop_lag(figures: ClassFigures, until: float) -> None:
    """The generator's own event-loop lag: latencies above it are the generator's."""
    while time.monotonic() < until:
        before = time.perf_counter()
        await asyncio.sleep(0.05)
        figures.own_lag.values.append((time.perf_counter() - before - 0.05) * 1000)


GENERATOR_FIRST_S = 5  # the seconds when every install, app and fault starts


def generator_cpu_seconds(figures: ClassFigures) -> float:
    """CPU seconds of the generator: its own threads, its children it waited for, and its
    flood's sender while it runs (once waited for, the children's count holds it)."""
    times = os.times()
    sender = cpu_seconds_of({figures.flood_sender}) if figures.flood_sender else 0.0
    return times.user + times.system + times.children_user + times.children_system + sender


async def own_cpu(figures: ClassFigures, until: float) -> None:
    """The generator's CPU seconds a second over its first GENERATOR_FIRST_S seconds,
    and over the whole run (read once every part has ended: ``whole_run_cpu``)."""
    began, used_before = time.monotonic(), generator_cpu_seconds(figures)
    figures.own_cpu_began = (began, used_before)
    await asyncio.sleep(min(GENERATOR_FIRST_S, max(0.0, until - began)))
    used = generator_cpu_seconds(figures) - used_before
    figures.own_cpu["first_s"] = round(used / (time.monotonic() - began), 2)


def whole_run_cpu(figures: ClassFigures) -> None:
    began, used_before = figures.own_cpu_began
    used = generator_cpu_seconds(figures) - used_before
    figures.own_cpu["whole_run"] = round(used / (time.monotonic() - began), 2)


async def class_at_work(students: list[Student], seconds: float) -> ClassFigures:
    figures = ClassFigures()
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        # The class opens its IDEs (a terminal each) first, all at once, as a lesson
        # begins; the clock starts once they are open.
        workers = [student for student in students if student.role not in FAULT_ROLES]
        terminals = await asyncio.gather(
            *(open_terminal_or_error(http, student) for student in workers)
        )
        terminal_of = dict(zip((student.name for student in workers), terminals, strict=True))
        figures.started = time.monotonic()
        until = figures.started + seconds
        work = [own_loop_lag(figures, until), own_cpu(figures, until)]
        for student in students:
            if student.role in FAULTS:
                work.append(misbehave(http, student))
                continue
            if student.role == "flood":
                work.append(flood_preview(http, student, figures, until))
                continue
            work += [type_keys(terminal_of[student.name], student, figures, until)]
            work += [save_files(http, student, figures, until)]
            if student.role == "installer":
                work.append(install_burst(http, student, figures))
            elif student.role == "app":
                work.append(view_preview(http, student, figures, until))
        await asyncio.gather(*work)
    whole_run_cpu(figures)
    return figures


# --- one class size ------------------------------------------------------------------------


def start_all(hub, users: list[str]) -> dict:
    """Every server POSTed at once, each student following its start's progress event
    stream as the spawn page does; seconds from each POST to ready. JupyterHub answers
    429 past its ``concurrent_spawn_limit`` (100 starts pending): that student POSTs again
    when the answer's ``Retry-After`` says."""
    posted, ready, refused = {}, {}, []

    def start(user):
        posted[user] = time.perf_counter()
        while (response := hub.api("POST", f"/users/{user}/server")).status_code == 429:
            refused.append(user)
            time.sleep(float(response.headers.get("Retry-After", 5)))
        assert response.status_code in (201, 202), response.text
        wait_ready_event(hub, user)
        ready[user] = time.perf_counter()

    # A thread each: a retry waits alone, and every stream is read as it comes.
    with ThreadPoolExecutor(len(users)) as pool:
        list(pool.map(start, users))
    seconds = [ready[user] - posted[user] for user in ready]
    return {
        "ready": len(ready),
        "spawn_limit_answers": len(refused),
        "ready_p50_s": round(statistics.median(seconds), 1) if seconds else None,
        "ready_p95_s": round(percentile(seconds, 0.95), 1) if seconds else None,
        "ready_max_s": round(max(seconds), 1) if seconds else None,
    }


def roles_for(count: int, installers: float, apps: float, faults: list[str]) -> list[str]:
    roles = ["typist"] * count
    spots = iter(range(count))
    for role in faults:
        roles[next(spots)] = role
    for _ in range(round(count * installers)):
        roles[next(spots)] = "installer"
    for _ in range(max(1, round(count * apps))):
        roles[next(spots)] = "app"
    return roles


def measure_size(hub, users: list[str], options) -> dict:
    result = {"n": len(users), **start_all(hub, users)}
    states = {u: hub.api("GET", f"/users/{u}").json()["servers"].get("") for u in users}
    server_pids = {s["state"]["pid"] for s in states.values() if s and s.get("state")}
    roles = roles_for(len(users), options.installers, options.apps, options.faults)
    students = [
        Student(user, hub.user_token(user), hub.server_url(user), role)
        for user, role in zip(users, roles, strict=True)
    ]
    parts = hub_parts(hub.process.pid, server_pids)
    metrics_url = "/metrics"

    def hub_metrics() -> dict[float, float]:
        response = hub.session.get(
            f"{hub.url}/hub{metrics_url}",
            headers={"Authorization": f"token {hub.token}"},
            timeout=30,
        )
        return loop_histogram(response.text) if response.ok else {}

    def phase(run) -> dict:
        cpu_before = {name: cpu_seconds_of(pids) for name, pids in parts.items()}
        busy_before, total_before = machine_cpu()
        loop_before, started = hub_metrics(), time.monotonic()
        outcome = run()
        elapsed = time.monotonic() - started
        busy_after, total_after = machine_cpu()
        figures = {
            "hub_loop_lag_p99_ms": lag_p99_ms(loop_before, hub_metrics()),
            "cpu_busy": round((busy_after - busy_before) / max(total_after - total_before, 1), 2),
            "mem_available_mb": memory_available_mb(),
        }
        for name, pids in parts.items():
            used = cpu_seconds_of(pids) - cpu_before[name]
            figures[f"{name}_cpu_per_s"] = round(used / elapsed, 3)
        return {**figures, **(outcome or {})}

    def work() -> dict:
        with contextlib.ExitStack() as stack:
            if options.blocked_stacks:
                blocked = stack.enter_context(BlockedInServers())
            figures = asyncio.run(class_at_work(students, options.seconds))
        return {
            **({"blocked_in_servers": blocked.summary()} if options.blocked_stacks else {}),
            "echo": figures.echo.summary(figures.started),
            "save": figures.save.summary(figures.started),
            "installer_echo": figures.installer_echo.summary(figures.started),
            "installer_save": figures.installer_save.summary(figures.started),
            "preview": figures.preview.summary(figures.started),
            "install_s": figures.install_s,
            "flood_per_s": figures.flood_per_s,
            "generator_lag": figures.own_lag.summary(),
            "generator_cpu_per_s": figures.own_cpu,
            # To line the figures up with traces of the machine (CLOCK_MONOTONIC).
            "started_monotonic_s": round(figures.started, 3),
        }

    result["at_work"] = phase(work)
    idle_since = time.monotonic()
    result["idle"] = phase(lambda: time.sleep(options.idle_seconds))
    alive = {pid for pid in server_pids if Path(f"/proc/{pid}").exists()}
    result["pss_mb_per_idle_server"] = round(pss_mb(alive) / max(len(alive), 1), 1)
    result["pss_mb_hub_processes"] = pss_mb(set().union(*parts.values()))
    result["ran_out_first"] = what_ran_out(result)
    if options.cull_idle:
        result["culled"] = phase(lambda: wait_for_culler(hub, users, idle_since, options))
    stop_all(hub, users)
    return result


def wait_for_culler(hub, users: list[str], idle_since: float, options) -> dict:
    """Seconds from the class's last use to each server's stop by the idle culler (it
    looks every half limit and servers report every quarter: one to 1.5 limits, and
    what the hub takes to stop them all)."""
    running, stopped_after = set(users), []
    deadline = time.monotonic() + 2 * options.cull_idle + 120
    while running and time.monotonic() < deadline:
        still = {user["name"] for user in hub.all_users() if "" in user["servers"]}
        now = time.monotonic()
        stopped_after += [now - idle_since] * len(running - still)
        running &= still
        time.sleep(0.5)
    return {
        "culled": len(stopped_after),
        "not_culled": len(running),
        "stopped_after_idle_p50_s": round(statistics.median(stopped_after), 1)
        if stopped_after
        else None,
        "stopped_after_idle_max_s": round(max(stopped_after), 1) if stopped_after else None,
    }


def what_ran_out(result: dict) -> str:
    work = result["at_work"]
    if work["mem_available_mb"] < 1024:
        return "memory"
    if work["cpu_busy"] >= 0.95:
        return "cpu"
    if result["ready"] < result["n"]:
        return "server starts"
    return "nothing"


def summary_line(result: dict) -> str:
    def one(size: dict) -> str:
        work = size["at_work"]
        line = (
            f"N={size['n']} (busy weight {size['busy_cpu_weight']}, "
            f"writeback {size['writeback']}) "
            f"ready p95 {size['ready_p95_s']} s, "
            f"echo p99 {work['echo'].get('p99_ms')} ms, save p99 {work['save'].get('p99_ms')} ms "
            f"(after the first {SETTLED_AFTER_S} s: {work['echo'].get('settled_p99_ms')} / "
            f"{work['save'].get('settled_p99_ms')} ms) "
            f"(installers' own {work['installer_echo'].get('p99_ms')} / "
            f"{work['installer_save'].get('p99_ms')} ms), "
            f"preview p99 {work['preview'].get('p99_ms')} ms, "
            f"hub lag p99 {work['hub_loop_lag_p99_ms']} ms, "
            f"the generator's own CPU {work['generator_cpu_per_s'].get('first_s')} s/s over "
            f"the first {GENERATOR_FIRST_S} s, {work['cpu_busy']} of the machine busy, "
            f"{size['pss_mb_per_idle_server']} MB PSS/server, ran out: {size['ran_out_first']}"
        )
        if "culled" in size:
            culled = size["culled"]
            line += (
                f", culled {culled['culled']}/{size['n']} by "
                f"{culled['stopped_after_idle_max_s']} s idle "
                f"(hub lag p99 {culled['hub_loop_lag_p99_ms']} ms)"
            )
        return line

    return "class load: " + "; ".join(one(size) for size in result["sizes"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,50,100", help="class sizes, comma-separated")
    parser.add_argument("--seconds", type=float, default=60, help="seconds of work per size")
    parser.add_argument("--idle-seconds", type=float, default=30, help="idle seconds per size")
    parser.add_argument("--installers", type=float, default=0.1, help="fraction installing")
    parser.add_argument("--apps", type=float, default=0.1, help="fraction serving a preview")
    parser.add_argument(
        "--faults",
        nargs="?",
        const=",".join(FAULT_ROLES),
        default="",
        help=f"add misbehaving students: {', '.join(FAULT_ROLES)} (bare: all three)",
    )
    parser.add_argument(
        "--cull-idle",
        type=int,
        default=0,
        help="run the hub's idle culler at this many seconds and time it (0: off)",
    )
    parser.add_argument(
        "--busy-weights",
        default="0.125",
        help="CPU weights of busy servers to compare, a hub each (1: all servers equal)",
    )
    parser.add_argument(
        "--writeback",
        default="default",
        help="background writeback thresholds to compare, a hub each (default: the "
        "machine's; 64M: vm.dirty_background_bytes, as root)",
    )
    parser.add_argument(
        "--blocked-stacks",
        action="store_true",
        help="as root, count where the servers' blocked threads wait in the kernel",
    )
    parser.add_argument("--flood", help=argparse.SUPPRESS)  # the flooding student's process
    options = parser.parse_args()
    if options.flood:
        print(asyncio.run(flood(options.flood, os.environ["FLOOD_TOKEN"], options.seconds)))
        return
    if options.blocked_stacks and os.geteuid() != 0:
        parser.error("--blocked-stacks reads other users' kernel stacks: run it as root")
    options.faults = [fault for fault in options.faults.split(",") if fault]
    if set(options.faults) - set(FAULT_ROLES):
        parser.error(f"--faults takes some of {', '.join(FAULT_ROLES)}")
    sizes = [int(size) for size in options.sizes.split(",")]
    users = [f"learner{number:03d}" for number in range(max(sizes))]
    result = {"benchmark": "class_load", "cpus": os.cpu_count(), "root": os.geteuid() == 0}
    result["faults"] = options.faults
    result["sizes"] = []
    if options.cull_idle and options.cull_idle <= options.idle_seconds:
        parser.error("--cull-idle must be longer than --idle-seconds (idle PSS is read first)")
    culling = {"CODEPILOT_CULL_IDLE": str(options.cull_idle)} if options.cull_idle else {}
    machine = machine_writeback()
    try:
        settings = [
            (float(weight), writeback, writeback_wanted(writeback, machine))
            for weight in options.busy_weights.split(",")
            for writeback in options.writeback.split(",")
        ]
    except ValueError as error:
        parser.error(str(error))
    try:
        for weight, writeback, wanted in settings:
            # One hub per setting, the same class on each: weight 1 is every server equal.
            set_writeback(wanted)
            with tempfile.NamedTemporaryFile("w", suffix=".py") as extra:
                extra.write(f"c.CodePilotLocalSpawner.busy_cpu_weight = {weight}\n")
                extra.flush()
                env = {**culling, "CODEPILOT_HUB_EXTRA_CONFIG": extra.name}
                hub = start_hub(env=env, timeout=120)
                try:
                    for user in users:
                        hub.create_user(user)
                    for size in sizes:
                        measured = measure_size(hub, users[:size], options)
                        setting = {"busy_cpu_weight": weight, "writeback": writeback}
                        result["sizes"].append({**setting, **measured})
                finally:
                    hub.stop()
    finally:
        set_writeback(machine)
    print(json.dumps(result))
    print(summary_line(result))


if __name__ == "__main__":
    main()

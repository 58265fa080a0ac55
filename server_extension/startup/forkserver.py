"""The fork server: imports the user-server stack once, then forks one child per server.

Started by the hub (``python -P -s -m server_extension.startup.forkserver``) with a pipe on its
stdin (requests: 4-byte length, then JSON) and one on its stdout (replies: JSON lines),
it imports the stack, says ``{"ready": ...}``, and keeps one child forked ahead. That
child reads the next request itself (so no request ever enters the memory that later
children are copied from), the fork server forks the next one, and the child becomes
the server. A request says what a plain start would exec (``argv``, ``env``, ``cwd``)
and what to drop to (``uid``, ``gid``, ``groups``, the cgroup ``procs`` files to join,
the network namespace, the folder to mount as its private ``tmp``). The child replies
its pid once it is that server, before it runs any of the user's code, or replies the
error and exits:

- a session of its own (the hub's Popen used ``start_new_session``);
- joins the cgroup and the network namespace, gets mounts of its own (its ``/tmp``, a
  ``/proc`` showing its user's processes only), closes every descriptor of the hub's,
  then drops to the user's uid, gid and groups (checked: it cannot regain root);
- gets exactly the requested environment, also where /proc/<pid>/environ shows it (the
  process tag that finds a server's processes lives there), fresh random seeds and no
  inherited descriptor beyond stdin (/dev/null), stdout and stderr (the hub's log).

The packages' entry points are read once here too (``server_extension.startup.entrypoints``).
What no server uses at start is deferred here too (``server_extension.startup.deferred``), so
neither the fork server nor a child pays for it. A request's ``argv`` runs in process
when it is ``jupyterhub-singleuser``, ``codepilot-singleuser`` or this Python with
``-m`` (and at most ``-P``, ``-s``); anything else is refused and started as a plain
process by the hub. The channel to the hub is ``codepilot_contracts.forking``.

The fork server ends when the hub closes its stdin (the hub ended); servers do not.
"""

import contextlib
import ctypes
import gc
import importlib
import os
import random
import runpy
import signal
import sys
import tempfile
import time

from codepilot_contracts.forking import encode_reply, read_request
from codepilot_contracts.namespaces import SandboxEntry
from server_extension.startup.deferred import defer_unused_imports
from server_extension.startup.entrypoints import remember_entry_points

# Read when jupyterhub.singleuser is imported: a child asking for other values than the
# fork server had cannot be served from these imports.
IMPORT_TIME_VARIABLES = ("JUPYTERHUB_SINGLEUSER_APP", "JUPYTERHUB_SINGLEUSER_EXTENSION")
# Without it no server can be forked: the fork server says so and exits.
ESSENTIAL = "jupyterhub.singleuser"
# What every user server imports at start.
PRELOAD = (
    "jupyterhub.singleuser",
    "jupyter_server.serverapp",
    "jupyter_server.services.contents.largefilemanager",
    "jupyter_server_terminals",
    "terminado",
    "jupyterlab",
    "jupyterlab.labapp",
    "jupyterlab_server",
    "notebook_shim",
    "jupyter_lsp",
    # real-time collaboration (jupyter-collaboration)
    "jupyter_server_fileid.extension",
    "jupyter_server_ydoc.app",
    "server_extension.app",
    # imported at start, not by the modules above: jupyter-server's handlers as it
    # builds its web app, the storage a synced workspace restores with, IPython's paths
    # that notebook_shim reads, anyio's backend that the first file operation loads.
    # Each module a child imports itself costs it memory.
    "jupyter_server.kernelspecs.handlers",
    "jupyter_server.nbconvert.handlers",
    "jupyter_server.view.handlers",
    "jupyter_server.services.api.handlers",
    "jupyter_server.services.config.handlers",
    "jupyter_server.services.contents.handlers",
    "jupyter_server.services.events.handlers",
    "jupyter_server.services.kernels.handlers",
    "jupyter_server.services.kernelspecs.handlers",
    "jupyter_server.services.nbconvert.handlers",
    "jupyter_server.services.security.handlers",
    "jupyter_server.services.sessions.handlers",
    "jupyter_server.services.shutdown",
    "jupyter_lsp.virtual_documents_shadow",
    "notebook_shim.nbserver",
    "tornado.platform.asyncio",
    "jinja2.ext",
    "server_extension.storage.contents",
    "server_extension.storage.s3",
    "IPython.paths",
    "anyio._backends._asyncio",
)
# Functions (``module:function``) that read data every server reads at start and never
# changes, so that the children share it: botocore's S3 model and endpoint rules, and
# where typescript-language-server is installed.
READ_AHEAD = (
    "server_extension.storage.botodata:read_s3_client_data",
    "server_extension.codeintel:typescript_server_specs",
)
# Interpreter options of ``python <options> -m <module>`` that a child can honour: the
# fork server runs with -P and -s, so their effect on sys.path is already in place.
MODULE_FLAGS = {"-P", "-s"}
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4

_libc = ctypes.CDLL(None, use_errno=True)


def preload(modules=PRELOAD, read_ahead=READ_AHEAD) -> list[str]:
    """Read the packages' entry points, import ``modules``, then call ``read_ahead``;
    returns those that failed (logged, not fatal: a child then imports or reads it
    itself)."""
    remember_entry_points()  # before the imports that bind ``entry_points`` by name
    failed = []
    for name in modules:
        try:
            __import__(name)
        except Exception as error:
            print(f"fork server: cannot preload {name}: {error!r}", file=sys.stderr)
            failed.append(name)
    for entry in read_ahead:
        module, function = entry.split(":")
        try:
            getattr(importlib.import_module(module), function)()
        except Exception as error:
            print(f"fork server: cannot read ahead {entry}: {error!r}", file=sys.stderr)
            failed.append(entry)
    return failed


def entry_point(argv: list[str]):
    """The function that runs ``argv`` in this process, or None if it cannot be run here."""
    if not argv:
        return None
    program = os.path.basename(argv[0])
    if program in ("jupyterhub-singleuser", "codepilot-singleuser"):

        def run_singleuser():
            from jupyterhub.singleuser import main

            sys.argv = list(argv)
            sys.path.insert(0, os.path.dirname(argv[0]))  # as the script would have it
            return main()

        return run_singleuser
    pythons = {sys.executable, os.path.realpath(sys.executable)}
    if argv[0] not in pythons or "-m" not in argv[1:-1]:
        return None
    at = argv.index("-m", 1)
    flags, module, args = argv[1:at], argv[at + 1], argv[at + 2 :]
    if not set(flags) <= MODULE_FLAGS:
        return None

    def run_module():
        sys.argv = [module, *args]
        if "-P" not in flags:
            sys.path.insert(0, os.getcwd())  # as ``python -m`` would have it
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        return 0

    return run_module


def refusal(request: dict) -> str:
    """Why this process cannot start ``request``, or "" when it can."""
    if entry_point(request.get("argv", [])) is None:
        return f"cannot run {request.get('argv', [])[:1]} in process"
    env = request.get("env", {})
    for name in IMPORT_TIME_VARIABLES:
        if env.get(name, "") != os.environ.get(name, ""):
            return f"{name} differs from the fork server's"
    return ""


def environment_block(env: dict) -> bytes:
    return b"".join(f"{name}={value}".encode() + b"\0" for name, value in env.items())


def environment_area() -> tuple[int, int]:
    """Start and end address of this process's initial environment (what /proc shows)."""
    with open("/proc/self/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # Fields 50 and 51 of proc(5); ``fields`` starts at field 3.
    return int(fields[47]), int(fields[48])


def replace_environment(env: dict) -> None:
    """Make ``env`` this process's whole environment, /proc/<pid>/environ included."""
    block = environment_block(env)
    start, end = environment_area()
    if len(block) > end - start:
        raise OSError(f"environment of {len(block)} bytes does not fit in {end - start}")
    os.environ.clear()  # C's environ no longer points into the area we overwrite
    ctypes.memmove(start, block + b"\0" * (end - start - len(block)), end - start)
    os.environ.update(env)


def drop_privileges(uid: int, gid: int, groups: list[int]) -> None:
    os.setgroups(groups)
    os.setgid(gid)
    os.setuid(uid)
    if uid != 0:
        with contextlib.suppress(PermissionError):
            os.setuid(0)
            raise OSError("could regain root after dropping it")


def keep_only_standard_descriptors(keep: int) -> None:
    """stdin from /dev/null, stdout to stderr (the hub's log); close every other fd."""
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(2, 1)
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd != keep:
            with contextlib.suppress(OSError):
                os.close(fd)


def make_dumpable() -> None:
    """As after the exec of a plain start: the user's own /proc files are the user's.

    Changing uid left the process undumpable, so no process of the user could open its
    descriptors (``pidfd_getfd``) or trace it while it still held the hub's reply pipe:
    only now, with that pipe closed, does it become theirs to inspect."""
    _libc.prctl(PR_SET_DUMPABLE, 1)


def become_server(request: dict, replies_fd: int) -> None:
    """In the child: everything between fork and the server's first line of code."""
    for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.setsid()
    SandboxEntry.from_message(request.get("sandbox")).enter()  # as root still
    replace_environment(request["env"])
    # Before the uid changes: from then on the user's other processes may reach this one,
    # so nothing of the hub's may be left in it but the reply pipe (see make_dumpable).
    keep_only_standard_descriptors(keep=replies_fd)
    if request.get("uid") is not None:
        drop_privileges(request["uid"], request["gid"], request.get("groups", []))
    os.chdir(request["cwd"])  # as the user: their folder, their permissions
    random.seed()  # from os.urandom: nothing shared with the fork server or a sibling
    tempfile.tempdir = None  # TMPDIR of this environment, not the fork server's
    gc.enable()


def serve_one_request(taken_fd: int, replies_fd: int, parent: int) -> None:
    """In a child forked ahead of time: take the next request and become its server.

    The fork server itself never reads a request, so no user's environment or token is
    ever in the memory that later children are copied from.
    """
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # an idle child dies with its parent
    if os.getppid() != parent:  # it died before the line above
        os._exit(0)
    request = read_request(0)
    if request is None:  # the hub closed the channel: it ended
        os.write(taken_fd, b"e")
        os._exit(0)
    _libc.prctl(PR_SET_PDEATHSIG, 0)  # a server outlives the fork server
    os.write(taken_fd, b"t")
    os.close(taken_fd)
    reply = {"id": request.get("id")}
    code = 1
    try:
        reason = refusal(request)
        if reason:
            raise RuntimeError(reason)
        entry = entry_point(request["argv"])
        become_server(request, replies_fd)
        reply["pid"] = os.getpid()
        send_reply(replies_fd, reply)
        os.close(replies_fd)
        replies_fd = -1
        if request.get("uid") is not None:
            make_dumpable()
        code = entry() or 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except BaseException as error:
        if replies_fd >= 0:
            reply["error"] = f"{type(error).__name__}: {error}"
            with contextlib.suppress(OSError):
                send_reply(replies_fd, reply)
        with contextlib.suppress(Exception):
            sys.stderr.write(f"forked server failed: {error!r}\n")
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def send_reply(fd: int, reply: dict) -> None:
    os.write(fd, encode_reply(reply))


def main() -> None:
    started = time.monotonic()
    replies_fd = os.dup(1)
    os.dup2(2, 1)  # stray prints go to the log, never into the reply channel
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps ended servers
    gc.disable()
    defer_unused_imports()  # what no server uses at start stays out of every child too
    failed = preload()
    if ESSENTIAL in failed:
        send_reply(replies_fd, {"error": f"cannot import {ESSENTIAL}"})
        sys.exit(1)
    gc.collect()
    gc.freeze()  # preloaded objects stay out of the collector: their pages stay shared
    seconds = round(time.monotonic() - started, 3)
    send_reply(
        replies_fd, {"ready": True, "pid": os.getpid(), "failed": failed, "seconds": seconds}
    )
    parent = os.getpid()
    while True:
        # Fork the next server's child now: a start only waits for its setup.
        taken_read, taken_write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(taken_read)
            serve_one_request(taken_write, replies_fd, parent)
        os.close(taken_write)
        taken = os.read(taken_read, 1)
        os.close(taken_read)
        if taken == b"e":
            return
        if taken != b"t":  # the idle child was killed: fork another, not in a hot loop
            time.sleep(0.5)


if __name__ == "__main__":
    main()

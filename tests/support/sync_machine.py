"""A stateful model of a terminal hammering a synced workspace, for hypothesis.

``TerminalBursts`` drives the real engine: ``SyncContentsManager`` (editor saves),
its ``WorkspaceSync`` and the watcher, on an event loop of their own in a thread, against
a real S3 API (moto behind the tests' relay). Each rule is a burst of what terminals
do (trees made and moved in at once, overwrites, deletes, renames and moves of files
and folders, a file replaced by a folder and back, symlinks into and out of the
workspace, ignored paths), hundreds of paths at a time, while editor saves go through
the contents manager. Every other name a burst makes starts with bytes drawn from all
but ``/`` and NUL (invalid UTF-8, backslashes, newlines, names of 255 bytes). After
every burst the invariant waits, bounded, for the sync to settle: S3 holds exactly what
the disk holds (minus ignored paths, symlinks and paths whose key S3 cannot hold), the
manifest agrees with both, and the status says idle with nothing pending. With
``outages``, S3 also goes away in the middle of some bursts and comes back. Between any
two bursts the server may end, gracefully or as SIGKILL leaves it, and start again with
a restore, on the same disk or (after a graceful stop) a new one: every file on disk at
the end is there again with its bytes, and nothing else (no conflict copies).

Installs are among a terminal's operations (``node_modules/`` or ``.venv/`` filled, its
lock file rewritten, at the top of the workspace or one level down), and the workspace
runs as a server runs it: ``WorkspaceKeeper``, its dependency snapshots taken while the
server runs and at stop. After every graceful stop S3 holds, for each installed folder
with its lock file beside it, a snapshot of that lock file, and a restore into a new
disk (the next start on a new one, or a scratch folder at the end of an example) brings
every such folder back as it was: files, bytes, executable bits, links.

Used by tests/test_sync_properties.py and tests/benchmarks/soak_sync.py.
"""

import asyncio
import contextlib
import hashlib
import itertools
import json
import os
import shutil
import stat
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from tornado import web

from codepilot_contracts import layout
from server_extension.storage.contents import SyncContentsManager
from server_extension.storage.engine import WorkspaceSync
from server_extension.storage.ignore import is_state_path
from server_extension.storage.keeper import WorkspaceKeeper, dependency_snapshots
from server_extension.storage.location import WorkspaceLocation
from server_extension.storage.restore import restore_workspace
from server_extension.storage.s3 import S3Store
from server_extension.storage.snapshots import index_relpath
from server_extension.storage.watcher import watch_workspace

from .folders import ancestors

BUCKET = "properties"
IGNORE_LINES = ("*.log", "build/")
IGNORED_DIRS = {"node_modules", ".venv", "__pycache__", ".cache", ".ipynb_checkpoints", "build"}
IGNORED_SUFFIXES = (".pyc", ".log")
# Installed folders, each with the lock file that comes with it (``DEFAULT_FOLDERS``).
INSTALLS = (("node_modules", "package-lock.json"), (".venv", "requirements.txt"))
# Every workspace starts as a Node.js project at its top. The ignore rules stay as the
# test wrote them (changing them is not a burst); the top project's lock file stays too,
# but for installs, so every example has a snapshot to check.
KEPT_FILES = {".codepilotignore", "package-lock.json"}
# While the server runs, a snapshot is taken once a folder is this quiet (an install
# takes far less), looked for this often.
SNAPSHOT_QUIET_SECONDS = 1.0
SNAPSHOT_CHECK_SECONDS = 1.0
# Long enough for hundreds of pushes on a busy 2-core machine; a hung sync never gets there.
SETTLE_SECONDS = 45.0


class LoopThread:
    """An asyncio loop in a daemon thread, where the engine runs as in a server."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def submit(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro, timeout: float = 60):
        return self.submit(coro).result(timeout)

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@dataclass
class Harness:
    """What every example shares: the S3 server, the loop, a folder outside workspaces."""

    s3: object  # tests.support.s3server.S3Server
    loop: LoopThread
    outside: Path
    outages: bool = False
    stats: dict | None = None


@dataclass
class Workspace:
    manager: SyncContentsManager
    sync: WorkspaceSync
    keeper: WorkspaceKeeper
    stop: asyncio.Event
    watcher: asyncio.Task


async def open_workspace(root: Path, prefix: str, endpoint_url: str) -> Workspace:
    manager = SyncContentsManager(
        root_dir=str(root), s3_bucket=BUCKET, s3_key_prefix=prefix, s3_endpoint_url=endpoint_url
    )
    sync = manager.workspace_sync
    sync.max_backoff = 1.0  # retry soon once S3 is back
    snapshots = dependency_snapshots(
        sync, quiet_seconds=SNAPSHOT_QUIET_SECONDS, check_interval=SNAPSHOT_CHECK_SECONDS
    )
    keeper = WorkspaceKeeper(sync, snapshots)
    keeper.start()
    stop = asyncio.Event()
    watcher = asyncio.create_task(watch_workspace(sync, stop))
    return Workspace(manager, sync, keeper, stop, watcher)


async def close_workspace(workspace: Workspace) -> list[str]:
    """A graceful stop; returns the files it left unpushed."""
    workspace.stop.set()
    await asyncio.gather(workspace.watcher, return_exceptions=True)
    return await workspace.keeper.stop(10)


async def kill_workspace(workspace: Workspace) -> None:
    """As SIGKILL leaves it: every task ends where it is, nothing flushed or saved."""
    workspace.stop.set()
    tasks = [workspace.watcher, *workspace.sync._tasks, workspace.keeper._snapshot_loop]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await workspace.sync.store.close()


async def restore_into(root: Path, prefix: str, endpoint_url: str):
    """What a start runs before the server: the restore command's work ."""
    location = WorkspaceLocation(BUCKET, key_prefix=prefix, endpoint_url=endpoint_url)
    async with S3Store(location) as store:
        return await restore_workspace(store, location, root)


# --- the disk as a terminal sees it, and what S3 should hold -------------------------------


def ignored(relpath: str, is_dir: bool) -> bool:
    name = relpath.rsplit("/", 1)[-1]
    if is_dir:
        return name in IGNORED_DIRS or relpath == ".codepilot"
    return name.endswith(IGNORED_SUFFIXES) or name == ".s3keep"


def walk(root: Path) -> tuple[list[str], dict[str, os.stat_result]]:
    """(folders, regular files with their stat) that should be in S3; "" is the root."""
    folders, files = [], {}
    pending = [""]
    while pending:
        folder = pending.pop()
        folders.append(folder)
        for entry in os.scandir(root / folder if folder else root):
            relpath = f"{folder}/{entry.name}" if folder else entry.name
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode) and not ignored(relpath, True):
                pending.append(relpath)
            elif stat.S_ISREG(info.st_mode) and not ignored(relpath, False):
                files[relpath] = info
    return sorted(folders), files


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def installed(root: Path, prefix: str) -> dict[str, tuple[str, str]]:
    """Installed folders a snapshot should keep: at the top or one level down, a folder
    beside its lock file, where S3 holds that file: folder -> (lock file, its MD5)."""
    folders, files = walk(root)
    found = {}
    for parent in [folder for folder in folders if "/" not in folder]:
        for name, lock in INSTALLS:
            folder, lock = (f"{parent}/{name}", f"{parent}/{lock}") if parent else (name, lock)
            path = root / folder
            if path.is_dir() and not path.is_symlink() and lock in files and fits(prefix, lock):
                found[folder] = (lock, md5(root / lock))
    return found


def tree_of(folder: Path) -> dict[str, tuple]:
    """Everything below ``folder``: files with their bytes and executable bit, links with
    their target, folders."""
    tree = {}
    for path in sorted(folder.rglob("*")):
        relpath = os.fsencode(path.relative_to(folder))
        if path.is_symlink():
            tree[relpath] = ("link", os.readlink(path))
        elif path.is_dir():
            tree[relpath] = ("folder",)
        else:
            tree[relpath] = ("file", path.read_bytes(), os.access(path, os.X_OK))
    return tree


def fits(prefix: str, relpath: str) -> bool:
    """Whether S3 can hold ``relpath``: its key is no longer than S3 allows."""
    try:
        layout.key_for(prefix, relpath)
    except layout.LayoutError:
        return False
    return True


def folders_in_s3(prefix: str, folders: list[str], files) -> set[str]:
    """The folders S3 should hold: those with a file below that fits, or a folder that S3
    holds, and those holding nothing at all (by their marker). A folder whose only
    contents no key can hold is in no listing."""
    children: dict[str, list[tuple[str, bool]]] = {folder: [] for folder in folders}
    for folder in folders[1:]:
        children[folder.rpartition("/")[0]].append((folder, True))
    for relpath in files:
        children[relpath.rpartition("/")[0]].append((relpath, False))
    held: set[str] = set()
    for folder in sorted(folders[1:], key=lambda folder: folder.count("/"), reverse=True):
        below = children[folder]
        if not below:
            stored = fits(prefix, f"{folder}/.s3keep")
        else:
            stored = any(path in held if is_dir else fits(prefix, path) for path, is_dir in below)
        if stored:
            held.add(folder)
    return held


def mismatches(
    root: Path, prefix: str, remote: dict[str, str], manifest: dict, status: dict
) -> list[str]:
    """Why disk, S3 (relpath -> ETag), manifest and status do not agree yet; empty when
    they do."""
    folders, files = walk(root)
    expected = {relpath: md5(root / relpath) for relpath in files if fits(prefix, relpath)}
    markers = {relpath: etag for relpath, etag in remote.items() if relpath.endswith("/.s3keep")}
    remote_files = {relpath: etag for relpath, etag in remote.items() if relpath not in markers}
    problems = []
    for relpath in sorted(expected.keys() - remote_files.keys())[:5]:
        problems.append(f"missing in S3: {relpath}")
    for relpath in sorted(remote_files.keys() - expected.keys())[:5]:
        problems.append(f"in S3 but not on disk: {relpath}")
    for relpath in sorted(expected.keys() & remote_files.keys()):
        if expected[relpath] != remote_files[relpath]:
            problems.append(f"S3 holds other bytes: {relpath}")
    # A folder is in S3 when an object lies below it: files, or a marker when empty.
    remote_folders = {folder for relpath in remote for folder in ancestors(relpath)}
    for folder in sorted(folders_in_s3(prefix, folders, files) - remote_folders)[:5]:
        problems.append(f"folder missing in S3: {folder}")
    for folder in sorted(remote_folders - set(folders))[:5]:
        problems.append(f"folder in S3 but not on disk: {folder}")
    if any(etag != hashlib.md5(b"").hexdigest() for etag in markers.values()):
        problems.append("a folder marker is not empty")
    if manifest.keys() != remote.keys():
        problems.append(f"manifest != S3: {sorted(manifest.keys() ^ remote.keys())[:5]}")
    for relpath, entry in manifest.items():
        if remote.get(relpath) not in (None, entry.etag):
            problems.append(f"manifest ETag differs from S3: {relpath}")
        info = files.get(relpath)
        if info is not None and (entry.size, entry.mtime_ns) != (info.st_size, info.st_mtime_ns):
            problems.append(f"manifest size/mtime differ from disk: {relpath}")
    if status["state"] != "idle" or status["pending"]:
        problems.append(f"status {status['state']}, {status['pending']} pending")
    return problems[:20]


# --- terminal operations --------------------------------------------------------------------

KINDS = (
    "tree",
    "tree",
    "move_in",
    "overwrite",
    "delete_files",
    "delete_tree",
    "move",
    "replace",
    "symlink",
    "ignored",
    "install",
)
# Leaves room for the counter and ".txt" in Linux's 255 bytes a name.
ODD_NAME_BYTES = 240
odd_names = st.one_of(
    st.binary(min_size=1, max_size=12),
    st.binary(min_size=ODD_NAME_BYTES, max_size=ODD_NAME_BYTES),
).map(lambda raw: raw.replace(b"/", b"\\").replace(b"\0", b"\n"))
operations = st.tuples(
    st.sampled_from(KINDS),
    st.integers(0, 2**16),
    st.integers(0, 2**16),
    st.integers(0, 7),
    odd_names,
)


class Terminal:
    """Does to a workspace what shells, git, npm and unzip do, addressed by numbers."""

    def __init__(self, root: Path, outside: Path):
        self.root = root
        self.outside = outside
        self.names = itertools.count()
        self.odd = b""  # the drawn bytes of the current operation

    def fresh(self, stem: str) -> str:
        """A new name; every other one starts with the operation's drawn bytes."""
        number = next(self.names)
        name = f"{stem}{number}".encode()
        return os.fsdecode(self.odd + name if number % 2 else name)

    def content(self, name: str, big: bool) -> bytes:
        line = os.fsencode(f"{name} {next(self.names)}\n")
        return line * (4000 if big else 1 + len(line) % 3)

    def pick(self, items: list[str], number: int) -> str | None:
        return items[number % len(items)] if items else None

    def make_tree(self, base: Path, depth: int, fanout: int, files: int, big: bool) -> int:
        made = 0
        level = [base]
        base.mkdir()
        for _ in range(depth):
            below = []
            for folder in level:
                for _ in range(fanout):
                    child = folder / self.fresh("d")
                    child.mkdir()
                    below.append(child)
                    for _ in range(files):
                        name = self.fresh("f") + ".txt"
                        (child / name).write_bytes(self.content(name, big and made == 0))
                        made += 1
            level = below
        return made

    def apply(self, kind: str, a: int, b: int, c: int, odd: bytes = b"") -> None:
        """Run one operation; like a shell command it may fail when an editor save races
        it (``mkdir: File exists``), which leaves the disk as it is."""
        self.odd = odd
        with contextlib.suppress(OSError):
            self._apply(kind, a, b, c)

    def _apply(self, kind: str, a: int, b: int, c: int) -> None:
        folders, files = walk(self.root)
        file_list = [path for path in sorted(files) if path not in KEPT_FILES]
        parent = self.pick(folders, a)
        parent_path = self.root / parent if parent else self.root
        if kind in ("tree", "move_in"):
            depth, fanout, count = 1 + c % 3, 2 + b % 4, b % 5
            if kind == "tree":
                self.make_tree(parent_path / self.fresh("t"), depth, fanout, count, c == 7)
            else:  # made elsewhere, then moved in: no event announces its contents
                staged = self.outside / self.fresh("staged")
                self.make_tree(staged, depth, fanout, count, False)
                staged.rename(parent_path / self.fresh("m"))
        elif kind == "overwrite":
            for relpath in file_list[a % max(len(file_list), 1) :][: 1 + b % 40]:
                (self.root / relpath).write_bytes(self.content(relpath, c == 7))
        elif kind == "delete_files":
            for relpath in file_list[a % max(len(file_list), 1) :][: 1 + b % 40]:
                (self.root / relpath).unlink()
        elif kind == "delete_tree" and parent:
            shutil.rmtree(parent_path)
        elif kind == "move":
            self.move(folders, file_list, a, b, c)
        elif kind == "replace":
            self.replace(folders, file_list, a, c)
        elif kind == "symlink":
            self.symlink(parent_path, file_list, folders, b, c)
        elif kind == "ignored":
            self.ignored(parent_path, c)
        elif kind == "install":
            tops = [folder for folder in folders if "/" not in folder]
            self.install(self.pick(tops, a), INSTALLS[c % 2], 1 + b % 3)

    def move(self, folders, file_list, a, b, c) -> None:
        moving_folder = c % 2 == 0 and len(folders) > 1
        source = self.pick(folders[1:] if moving_folder else file_list, a)
        if source is None:
            return
        # A folder cannot move into itself; "" (the root) is always a candidate.
        targets = [folder for folder in folders if not (folder + "/").startswith(source + "/")]
        target = self.pick(targets, b)
        target_path = self.root / target if target else self.root
        name = self.fresh("r") + ("" if moving_folder else ".txt")
        if c % 4 == 3 and moving_folder:  # out of the workspace altogether
            (self.root / source).rename(self.outside / self.fresh("gone"))
        else:
            (self.root / source).rename(target_path / name)

    def replace(self, folders, file_list, a, c) -> None:
        if c % 2 == 0 and file_list:  # a file becomes a folder of the same name
            path = self.root / self.pick(file_list, a)
            path.unlink()
            path.mkdir()
            (path / "inside.txt").write_bytes(self.content("inside", False))
        elif len(folders) > 1:  # a folder becomes a file of the same name
            path = self.root / self.pick(folders[1:], a)
            shutil.rmtree(path)
            path.write_bytes(self.content(path.name, False))

    def symlink(self, parent_path: Path, file_list, folders, b, c) -> None:
        link = parent_path / self.fresh("link")
        secrets = self.outside / "secrets"
        kind = c % 5
        if kind == 0:
            link.symlink_to(secrets / "secret.txt")
        elif kind == 1:
            link.symlink_to(secrets, target_is_directory=True)
        elif kind == 2 and file_list:
            link.symlink_to(self.root / self.pick(file_list, b))
        elif kind == 3 and len(folders) > 1:
            link.symlink_to(self.root / self.pick(folders[1:], b), target_is_directory=True)
        elif kind == 4 and file_list:  # a synced file replaced by a link out
            path = self.root / self.pick(file_list, b)
            path.unlink()
            path.symlink_to(secrets / "secret.txt")
        else:
            link.symlink_to(self.outside / "no-such-file")

    def ignored(self, parent_path: Path, c: int) -> None:
        kind = c % 4
        if kind == 0:
            self.make_tree(parent_path / "node_modules", 2, 3, 4, False)
        elif kind == 1:
            (parent_path / (self.fresh("debug") + ".log")).write_bytes(b"log line\n")
        elif kind == 2:
            build = parent_path / "build"
            build.mkdir(exist_ok=True)
            (build / (self.fresh("out") + ".js")).write_bytes(b"built\n")
        else:
            cache = parent_path / "__pycache__"
            cache.mkdir(exist_ok=True)
            (cache / (self.fresh("mod") + ".pyc")).write_bytes(b"\x00pyc")

    def install(self, parent: str, kind: tuple[str, str], packages: int) -> None:
        """What ``npm install`` or ``pip install`` does: packages (files, an executable, a
        link inside) into the folder, then the lock file, rewritten."""
        folder_name, lock_name = kind
        parent_path = self.root / parent if parent else self.root
        folder = parent_path / folder_name
        folder.mkdir(exist_ok=True)
        (folder / "bin").mkdir(exist_ok=True)
        names = []
        for _ in range(packages):
            name = self.fresh("pkg")
            (folder / name).mkdir()
            (folder / name / "index.js").write_bytes(self.content(name, False))
            tool = folder / name / "tool"
            tool.write_bytes(b"#!/bin/sh\necho " + os.fsencode(name) + b"\n")
            tool.chmod(0o755)
            (folder / "bin" / name).symlink_to(Path("..") / name / "tool")
            names.append(name)
        lock = parent_path / lock_name
        (lock.with_name(lock_name + ".new")).write_bytes(
            os.fsencode(f"{next(self.names)} " + " ".join(names)) + b"\n"
        )
        # Written whole at once, as npm does: never read half-written.
        os.replace(lock.with_name(lock_name + ".new"), lock)


async def editor_saves(manager: SyncContentsManager, paths: list[str], tag: str) -> int:
    """Save ``paths`` through the contents manager, as JupyterLab does; count the saves
    that were acknowledged. A path whose folder the terminal just removed fails, as it
    would in the editor; an outage fails with 503. Neither may corrupt the mirror."""
    saved = 0
    for number, path in enumerate(paths):
        model = {"type": "file", "format": "text", "content": f"{tag} save {number}\n"}
        try:
            await manager.save(model, path)
            saved += 1
        except (web.HTTPError, OSError):
            pass
    return saved


class TerminalBursts(RuleBasedStateMachine):
    """One workspace per example; bursts of terminal operations are its steps."""

    harness: Harness  # set by the test or the soak script before running
    counter = itertools.count()

    def __init__(self):
        super().__init__()
        harness = self.harness
        self.user = f"u{os.getpid()}-{next(self.counter)}"
        self.prefix = f"cp/users/{self.user}/default/"
        self.root = Path(tempfile.mkdtemp(prefix="codepilot-prop-"))
        (self.root / ".codepilotignore").write_text("\n".join(IGNORE_LINES) + "\n")
        (self.root / "editor").mkdir()
        self.old_roots: list[Path] = []
        self.terminal = Terminal(self.root, harness.outside)
        self.terminal.install("", INSTALLS[0], 1)
        self.workspace = harness.loop.run(
            open_workspace(self.root, self.prefix, harness.s3.endpoint_url)
        )
        self.bursts = 0
        if harness.stats is not None:
            harness.stats["examples"] = harness.stats.get("examples", 0) + 1
            harness.stats.setdefault("started", time.monotonic())
        self.wait_for_watcher()

    def wait_for_watcher(self) -> None:
        """watchfiles starts in a thread: a probe file reaching S3 says it is watching."""
        name = f"probe{next(self.counter)}.txt"
        (self.root / name).write_text("probe")
        deadline = time.monotonic() + SETTLE_SECONDS
        while self.workspace.sync.manifest.get(name) is None:
            assert time.monotonic() < deadline, "the watcher never mirrored a probe file"
            time.sleep(0.05)

    def teardown(self):
        try:
            expected = installed(self.root, self.prefix)
            left = self.harness.loop.run(close_workspace(self.workspace), timeout=30)
            # Only a file S3 could hold and did not get holds the snapshots back; the
            # restarts check that files are kept.
            if not [path for path in left if fits(self.prefix, path)]:
                scratch = Path(tempfile.mkdtemp(prefix="codepilot-prop-scratch-"))
                self.old_roots.append(scratch)
                result = self.harness.loop.run(
                    restore_into(scratch, self.prefix, self.harness.s3.endpoint_url)
                )
                assert not result.failed, result.summary()
                self.check_installed(expected, self.root, scratch)
        finally:
            for root in {self.root, *self.old_roots}:
                shutil.rmtree(root, ignore_errors=True)

    def check_installed(self, expected: dict[str, tuple[str, str]], old: Path, new: Path):
        """After a graceful stop: S3 holds a snapshot of each installed folder's lock file,
        and the restore into ``new``, a new disk, brought the folders back as ``old``, the
        stopped server's disk, has them."""
        for folder, (lock, lock_md5) in expected.items():
            index = self.harness.s3.read(BUCKET, layout.key_for(self.prefix, index_relpath(folder)))
            assert index is not None, f"no snapshot of {folder} in S3 after a graceful stop"
            assert json.loads(index)["locks"] == {lock: lock_md5}, folder
            assert tree_of(new / folder) == tree_of(old / folder), folder
        assert installed(new, self.prefix) == expected
        if self.harness.stats is not None:
            count = self.harness.stats.get("installs_restored", 0) + len(expected)
            self.harness.stats["installs_restored"] = count

    @rule(kill=st.booleans(), fresh=st.booleans())
    def restart(self, kill, fresh):
        """The server ends (a graceful stop, or SIGKILL) and starts again with a restore,
        on the same disk (one machine) or, after a graceful stop, a new one (a new pod):
        every file on disk at the end is there again, with its bytes, and nothing else."""
        fresh = fresh and not kill  # after SIGKILL, a new disk has only what S3 had
        loop, endpoint = self.harness.loop, self.harness.s3.endpoint_url
        _, files = walk(self.root)
        before = {path: (self.root / path).read_bytes() for path in files}
        if fresh:  # a new disk gets only what S3 can hold
            before = {path: data for path, data in before.items() if fits(self.prefix, path)}
        expected = installed(self.root, self.prefix)
        left = loop.run(kill_workspace(self.workspace) if kill else close_workspace(self.workspace))
        old_root = self.root
        if fresh:
            self.old_roots.append(self.root)
            self.root = Path(tempfile.mkdtemp(prefix="codepilot-prop-"))
            self.terminal.root = self.root
        result = loop.run(restore_into(self.root, self.prefix, endpoint))
        assert not result.failed and not result.conflicts, result.summary()
        if fresh and not [path for path in left if fits(self.prefix, path)]:
            self.check_installed(expected, old_root, self.root)
        _, files = walk(self.root)
        after = {path: (self.root / path).read_bytes() for path in files}
        assert after.keys() == before.keys(), sorted(after.keys() ^ before.keys())[:5]
        assert [path for path in after if after[path] != before[path]] == []
        self.workspace = loop.run(open_workspace(self.root, self.prefix, endpoint))
        self.wait_for_watcher()
        if self.harness.stats is not None:
            kind = "kills" if kill else "fresh_restarts" if fresh else "restarts"
            self.harness.stats[kind] = self.harness.stats.get(kind, 0) + 1

    def run_burst(self, ops, saves: int, outage_after: int | None) -> None:
        paths = [f"editor/e{number % 7}.txt" for number in range(saves)]
        _, files = walk(self.root)
        # Saves racing the terminal on its own files, too.
        paths += [path for path in sorted(files) if path not in KEPT_FILES][: saves // 2]
        loop = self.harness.loop
        pending_saves = loop.submit(editor_saves(self.workspace.manager, paths, f"b{self.bursts}"))
        for index, op in enumerate(ops):
            if index == outage_after:
                self.ops_during_outage(ops[index:])
                break
            self.terminal.apply(*op)
        else:
            if outage_after is not None:
                self.ops_during_outage([])
        try:
            pending_saves.result(SETTLE_SECONDS)
        except TimeoutError:
            self.record_failure()
            raise AssertionError(
                f"editor saves still waiting {SETTLE_SECONDS}s after burst {self.bursts} of "
                f"example {self.example_number()}: the sync hangs"
            ) from None
        self.bursts += 1
        if self.harness.stats is not None:
            self.harness.stats["bursts"] = self.harness.stats.get("bursts", 0) + 1
            self.harness.stats["operations"] = self.harness.stats.get("operations", 0) + len(ops)

    def ops_during_outage(self, ops) -> None:
        sync = self.workspace.sync
        before = sync.status.last_error
        with self.harness.s3.outage():
            for op in ops:
                self.terminal.apply(*op)
            # Something always waits during the outage, so the engine does meet it.
            marker = self.terminal.fresh("outage") + ".txt"
            (self.root / marker).write_text(f"outage {self.bursts}\n")
            deadline = time.monotonic() + SETTLE_SECONDS
            while sync.status.last_error is before:
                assert time.monotonic() < deadline, "no push failed during the S3 outage"
                time.sleep(0.05)
        if self.harness.stats is not None:
            self.harness.stats["outages"] = self.harness.stats.get("outages", 0) + 1

    @rule(ops=st.lists(operations, min_size=1, max_size=6), saves=st.integers(0, 12))
    def burst(self, ops, saves):
        self.run_burst(ops, saves, outage_after=None)

    @precondition(lambda self: self.harness.outages)
    @rule(
        ops=st.lists(operations, min_size=1, max_size=6),
        saves=st.integers(0, 12),
        cut=st.integers(0, 6),
    )
    def burst_with_outage(self, ops, saves, cut):
        self.run_burst(ops, saves, outage_after=min(cut, len(ops)))

    @invariant()
    def s3_mirrors_the_disk(self):
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            problems = self.compare()
            if not problems:
                return
            if time.monotonic() > deadline:
                self.record_failure()
                raise AssertionError(
                    f"not settled {SETTLE_SECONDS}s after burst {self.bursts} of example "
                    f"{self.example_number()}:\n" + "\n".join(problems)
                )
            time.sleep(0.2)

    def record_failure(self) -> None:
        if self.harness.stats is not None:  # hypothesis replays it later; keep the first
            self.harness.stats.setdefault("first_failure", self.example_number())

    def example_number(self) -> str:
        stats = self.harness.stats or {}
        if "started" not in stats:
            return "?"
        seconds = time.monotonic() - stats["started"]
        return f"{stats['examples']} ({seconds:.0f}s into the run)"

    def compare(self) -> list[str]:
        async def snapshot():
            sync = self.workspace.sync
            return sync.status_model(), dict(sync.manifest.entries)

        status, manifest = self.harness.loop.run(snapshot())
        client = self.harness.s3.client(direct=True)
        remote = {}
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix=self.prefix
        ):
            for item in page.get("Contents", []):
                # Keys as the layout contract names them (escaped odd names decoded).
                relpath = layout.relpath_for(self.prefix, item["Key"])
                if not is_state_path(relpath):  # snapshots and the pack: not files
                    remote[relpath] = item["ETag"].strip('"')
        return mismatches(self.root, self.prefix, remote, manifest, status)


def make_harness(s3, outages: bool = False, stats: dict | None = None) -> Harness:
    outside = Path(tempfile.mkdtemp(prefix="codepilot-outside-"))
    (outside / "secrets").mkdir()
    (outside / "secrets" / "secret.txt").write_text("never in S3")
    return Harness(s3, LoopThread(), outside, outages, stats)


def machine_for(harness: Harness) -> type[TerminalBursts]:
    """A subclass bound to ``harness`` (hypothesis makes a fresh machine per example)."""
    return type("TerminalBurstsRun", (TerminalBursts,), {"harness": harness})


def property_settings(examples: int, steps: int, shrink: bool = False) -> settings:
    """Hypothesis settings for runs of ``TerminalBursts`` (the tests' and the soak's)."""
    phases = [Phase.explicit, Phase.reuse, Phase.generate, *([Phase.shrink] if shrink else [])]
    return settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        database=None,
        phases=phases,
        # Every example is slow by design (real S3, real watcher, hundreds of files).
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )

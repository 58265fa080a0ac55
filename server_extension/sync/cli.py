"""The ``python -m server_extension.sync`` command line (see the package docstring)."""

import argparse
import asyncio
import json
import logging
import sys
import time
from pathlib import Path

from codepilot_contracts import layout
from codepilot_contracts.restoreprogress import progress_record, record_line, restore_message

from ..starters import starter_dir, starter_names
from ..storage.engine import WorkspaceSync
from ..storage.keeper import dependency_snapshots
from ..storage.localtree import scan_local
from ..storage.location import WorkspaceLocation
from ..storage.pack import packable, upload_pack
from ..storage.plan import compare_workspace
from ..storage.restore import RestoreResult, restore_workspace
from ..storage.s3 import S3Error, S3Store
from ..storage.seed import copy_starter, starter_files, upload_folder, workspace_is_new
from .settings import OPTIONS, SettingsError, location_from_options, resolve


class ProgressPrinter:
    """Prints restore progress as JSON lines or text, at most every ``interval`` seconds."""

    def __init__(self, style: str, interval: float = 0.2, stream=sys.stdout):
        self.style = style
        self.interval = interval
        self.stream = stream
        self._last = 0.0
        self._last_line = None

    def _emit(self, record: dict) -> None:
        if self.style == "json":
            line = record_line(record)
        elif record["event"] == "progress":
            line = restore_message(record)
        elif record["event"] == "error":
            line = f"error: {record['message']}"
        else:
            line = " ".join(f"{key}={value}" for key, value in record.items() if key != "event")
        print(line, file=self.stream, flush=True)

    def progress(self, done: int, total: int, bytes_done: int = 0, bytes_total: int = 0) -> None:
        if self.style == "none":
            return
        now = time.monotonic()
        record = progress_record(done, total, bytes_done, bytes_total)
        if done == total or now - self._last >= self.interval:
            if record != self._last_line:
                self._emit(record)
                self._last_line = record
            self._last = now

    def finish(self, record: dict) -> None:
        if self.style != "none" or record["event"] == "error":
            self._emit(record)


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(
        prog="python -m server_extension.sync", description="Workspace S3 sync."
    )
    commands = main.add_subparsers(dest="command", required=True)

    def common(command: argparse.ArgumentParser, workspace: bool = True):
        for name, text in OPTIONS.items():
            if not workspace and name.startswith("workspace_"):
                continue
            command.add_argument("--" + name.replace("_", "-"), dest=name, help=text)
        if workspace:
            command.add_argument(
                "--root", default=".", help="the local workspace folder (default: .)"
            )

    restore = commands.add_parser("restore", help="S3 -> local workspace")
    common(restore)
    # --template: the option's old name, still accepted.
    restore.add_argument(
        "--starter", "--template", dest="starter", help="starter for a new workspace"
    )
    restore.add_argument("--progress", choices=("json", "text", "none"), default="text")
    restore.add_argument("--concurrency", type=int, default=64)
    restore.add_argument(
        "--no-snapshots",
        dest="snapshots",
        action="store_false",
        help="restore files only; dependency snapshots (node_modules/, .venv/) stay in S3",
    )

    push = commands.add_parser("push", help="local workspace -> S3")
    common(push)

    pack = commands.add_parser(
        "pack", help="upload the small-files pack that makes the next restore faster"
    )
    common(pack)

    snapshot = commands.add_parser(
        "snapshot",
        help="push, then save out-of-date dependency snapshots and the pack, as a stopping "
        "server does",
    )
    common(snapshot)

    status = commands.add_parser("status", help="compare local and S3, change nothing")
    common(status)

    # seed-templates: the command's old name, still run; the starters folder keeps
    # "templates" as its stored name.
    seed = commands.add_parser(
        "seed-starters", aliases=["seed-templates"], help="upload starters to <prefix>/templates/"
    )
    seed.set_defaults(command="seed-starters")
    common(seed, workspace=False)
    seed.add_argument("names", nargs="*", help=f"starters (default: {' '.join(starter_names())})")
    return main


def seed_local(root: Path, starter: str, printer: ProgressPrinter) -> RestoreResult:
    """Without S3 (one machine, local storage): a new workspace gets the starter (blocking)."""
    started = time.monotonic()
    result = RestoreResult()
    root.mkdir(parents=True, exist_ok=True)
    if starter and workspace_is_new(root):
        result.total = result.downloaded = copy_starter(root, starter, printer.progress)
        result.starter = starter
    result.seconds = time.monotonic() - started
    return result


async def run_restore(args) -> int:
    printer = ProgressPrinter(args.progress)
    starter = resolve(args, "starter")
    try:
        if not resolve(args, "s3_bucket"):
            result = await asyncio.to_thread(seed_local, Path(args.root), starter, printer)
        else:
            location = location_from_options(args)
            async with S3Store(location) as store:
                result = await restore_workspace(
                    store,
                    location,
                    Path(args.root),
                    starter=starter,
                    concurrency=args.concurrency,
                    on_progress=printer.progress,
                    snapshots=args.snapshots,
                    empty_prefix=resolve(args, "restore_empty_prefix"),
                )
    except (S3Error, ValueError, OSError) as error:
        printer.finish({"event": "error", "message": str(error)})
        return 1
    for key, why in sorted(result.skipped.items()):
        print(f"warning: not restored: {key!r}: {why}", file=sys.stderr)
    printer.finish({"event": "done", **result.summary()})
    return 1 if result.failed else 0


async def push_workspace(
    store: S3Store, location: WorkspaceLocation, root: Path
) -> tuple[WorkspaceSync, dict[str, Exception]]:
    """Push the whole workspace and save the manifest; returns the sync and what failed."""
    sync = WorkspaceSync(root, store, location.key_prefix)
    failures = await sync.push_tree("")
    await sync.write_manifest()
    return sync, failures


async def run_push(args) -> int:
    location = location_from_options(args)
    try:
        async with S3Store(location) as store:
            sync, failures = await push_workspace(store, location, Path(args.root))
    except (S3Error, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for relpath, error in sorted(failures.items()):
        print(f"not pushed: {relpath}: {error}", file=sys.stderr)
    print(json.dumps({"pushed_to": sync.location, "failed": len(failures)}))
    return 1 if failures else 0


async def run_pack(args) -> int:
    """Push, then pack the small files S3 now holds as they are locally."""
    location = location_from_options(args)
    try:
        async with S3Store(location) as store:
            sync, failures = await push_workspace(store, location, Path(args.root))
            tree = await asyncio.to_thread(scan_local, sync.root, sync.rules)
            members = packable(sync.manifest, tree.files)
            packed = await upload_pack(store, sync.key_prefix, sync.root, members)
    except (S3Error, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps({"packed": len(packed), "location": sync.location, "failed": len(failures)}))
    return 1 if failures else 0


async def run_snapshot(args) -> int:
    """What a stopping server does after its last push: snapshots and pack, now."""
    location = location_from_options(args)
    try:
        async with S3Store(location) as store:
            sync, failures = await push_workspace(store, location, Path(args.root))
            failed = await dependency_snapshots(sync).take_due(0) if not failures else ["files"]
    except (S3Error, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps({"location": sync.location, "failed": sorted([*failures, *failed])}))
    return 1 if failures or failed else 0


async def run_status(args) -> int:
    location = location_from_options(args)
    try:
        async with S3Store(location) as store:
            view = await compare_workspace(store, location.key_prefix, Path(args.root))
    except S3Error as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    plan = view.plan
    report = {
        "location": view.location,
        "remote_files": plan.total,
        "in_sync": len(plan.unchanged),
        "to_restore": sorted([*plan.download, *plan.verify, *plan.conflicts]),
        "to_push": sorted([*plan.local_changes, *plan.local_only]),
        "deleted_in_s3": sorted(plan.remove_local),
    }
    print(json.dumps(report, indent=1))
    return 0


async def run_seed_starters(args) -> int:
    names = args.names or starter_names()
    location = location_from_options(args, workspace=False)
    async with S3Store(location) as store:
        for name in names:
            folder = starter_dir(name)
            if folder is None:
                print(f"error: no starter named {name!r}", file=sys.stderr)
                return 1
            target = location.starter_prefix(name)
            try:
                stale = await store.list(target)
                count = await upload_folder(store, folder, target)
                uploaded = {target + path for path in starter_files(folder)}
                await store.delete(key for key in stale if key not in uploaded)
            except S3Error as error:
                print(f"error: {error}", file=sys.stderr)
                return 1
            print(f"{name}: {count} files -> s3://{location.bucket}/{target}")
    return 0


COMMANDS = {
    "restore": run_restore,
    "push": run_push,
    "pack": run_pack,
    "snapshot": run_snapshot,
    "status": run_status,
    "seed-starters": run_seed_starters,
}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return asyncio.run(COMMANDS[args.command](args))
    except (layout.LayoutError, SettingsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

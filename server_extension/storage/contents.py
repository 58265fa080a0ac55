"""Contents managers for workspaces: jupyter-server's own file manager, kept inside the
workspace, and the same manager mirroring every change to S3 before it answers.

Both subclass ``AsyncLargeFileManager``, the stock default, so models, status codes
and errors are jupyter-server's; they add only:

- paths that resolve through a symlink to outside the workspace are refused (404, as
  the stock manager answers for ``../``), in the contents API and in ``/files/``; a
  folder is not copied into such a path, nor when it holds a symlink out (400: stock
  would copy the link's target into the workspace);
- renaming the workspace root answers 400 (stock tries, and answers 500);
- ``SyncContentsManager`` acknowledges a save, chunked upload, rename, copy, delete or
  new folder only once S3 holds it too. When S3 fails, the request fails with a message
  that names S3, the local file is kept, and the path stays pending until S3 takes it.
"""

import asyncio
import os
from contextvars import ContextVar

from jupyter_server.base.handlers import AuthenticatedFileHandler
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from tornado import web
from traitlets import Float, Instance, Int, Unicode, default

from codepilot_contracts.layout import LayoutError

from .. import upstream
from .engine import WorkspaceSync
from .localtree import first_link_out, holder_is_inside, is_inside, relative_posix
from .location import WorkspaceLocation
from .s3 import S3Error, S3Store
from .unchanged import WritesOnlyChanges, recorded_writes

# The manager's own S3 settings, for running it without Code Pilot's extension.
STANDALONE_S3_TRAITS = (
    "s3_bucket",
    "s3_key_prefix",
    "s3_endpoint_url",
    "s3_region",
    "s3_credentials_url",
)


# What this task's get(content=True) found inside the workspace, on disk: a folder whose
# entries it is listing, or a file.
CHECKED_LISTING: ContextVar[str | None] = ContextVar("checked_listing", default=None)
# An entry's model in a listing when the entry was removed after the folder's scan: left
# out of the listing, as ``ls`` leaves it out.
VANISHED_ENTRY: dict = {"vanished": True}


def outside_error(path: str) -> web.HTTPError:
    # The stock manager's answer for "../", so the two kinds of escape look alike.
    return web.HTTPError(404, f"{path} is outside root contents directory")


class WorkspaceFilesHandler(AuthenticatedFileHandler):
    """``/files/<path>`` that will not serve a symlink's target outside the workspace."""

    def validate_absolute_path(self, root: str, absolute_path: str) -> str:
        abs_path = super().validate_absolute_path(root, absolute_path)
        if not is_inside(root, abs_path):
            raise web.HTTPError(404)
        return abs_path


class WorkspaceFileManager(upstream.SavesOffTheEventLoop, WritesOnlyChanges, AsyncLargeFileManager):
    """The stock large-file manager that never reads or writes outside its root, saves
    without holding up the event loop, and leaves a file alone when a save holds its
    bytes."""

    @default("files_handler_class")
    def _default_files_handler_class(self):
        return WorkspaceFilesHandler

    def _refuse_outside(self, path: str, whole: bool = True) -> str:
        """404 unless ``path`` (``whole``) or the folder holding it resolves inside the root;
        else ``path`` on disk.

        Checking only the holder lets a symlink itself be listed, renamed or deleted, but
        nothing below a symlinked folder. The root holds itself: its own parent is outside.
        """
        os_path = upstream.os_path(self, path.strip("/"))
        inside = is_inside if whole else holder_is_inside
        if not inside(self.root_dir, os_path):
            raise outside_error(path)
        return os_path

    def _is_root(self, path: str) -> bool:
        return upstream.os_path(self, path.strip("/")) == os.path.abspath(self.root_dir)

    async def get(self, path, content=True, type=None, format=None, require_hash=False):
        if content or require_hash:
            # Stock lists a folder with one get(content=False) per entry, in this task:
            # their holder is the folder checked here, not to be resolved again for each.
            token = CHECKED_LISTING.set(self._refuse_outside(path))
            try:
                model = await super().get(
                    path, content=content, type=type, format=format, require_hash=require_hash
                )
            finally:
                CHECKED_LISTING.reset(token)
            if model["type"] == "directory" and model.get("content") is not None:
                model["content"] = [e for e in model["content"] if e is not VANISHED_ENTRY]
            return model
        if not self._in_checked_listing(path):
            self._refuse_outside(path, whole=False)
            return await super().get(path, content=False, type=type, format=format)
        try:
            return await super().get(path, content=False, type=type, format=format)
        except web.HTTPError as error:
            # Removed between the folder's scan and its own get (a save renaming
            # untitled.txt, an install's temporary file): stock's whole listing would 404,
            # which JupyterLab shows as "Directory not found".
            if error.status_code != 404:
                raise
            return VANISHED_ENTRY

    def _in_checked_listing(self, path: str) -> bool:
        holder = os.path.dirname(upstream.os_path(self, path.strip("/")))
        return holder == CHECKED_LISTING.get()

    async def save(self, model, path=""):
        self._refuse_outside(path)
        return await super().save(model, path)

    async def delete_file(self, path):
        self._refuse_outside(path, whole=False)
        return await super().delete_file(path)

    async def rename_file(self, old_path, new_path):
        self._refuse_outside(old_path, whole=False)
        self._refuse_outside(new_path, whole=False)
        # Stock tries to move the root into itself and answers 500.
        if old_path.strip("/") != new_path.strip("/") and self._is_root(old_path):
            raise web.HTTPError(400, "Can't rename the workspace root")
        return await super().rename_file(old_path, new_path)

    async def copy(self, from_path, to_path=None):
        # Stock copies a folder with shutil.copytree, past save(): it would write into a
        # symlinked destination and copy the targets of symlinks out of the workspace.
        self._refuse_outside(from_path)
        if to_path is not None:
            self._refuse_outside(to_path)
        source = upstream.os_path(self, from_path.strip("/"))
        link_out = await asyncio.to_thread(first_link_out, self.root_dir, source)
        if link_out is not None:
            raise web.HTTPError(
                400,
                f"Can't copy {from_path}: {relative_posix(self.root_dir, link_out)} is a "
                "symlink to outside the workspace",
            )
        return await super().copy(from_path, to_path)


class SyncContentsManager(WorkspaceFileManager):
    """A workspace on local disk (what terminals see) mirrored to S3 on every change.

    Code Pilot's extension hands it the workspace's ``WorkspaceLocation``, built from
    ``c.CodePilot``, when ``storage`` is ``sync``. Without the extension, the ``s3_*``
    traits say where the workspace is.
    """

    workspace_location = Instance(
        WorkspaceLocation,
        allow_none=True,
        help="""Where the workspace lives in S3; set by Code Pilot's extension from its
        ``c.CodePilot`` settings, and then the ``s3_*`` traits are not read.""",
    ).tag(config=True)

    s3_bucket = Unicode(help="S3 bucket that holds the workspace.").tag(config=True)

    s3_key_prefix = Unicode(
        help="""Key prefix of this workspace in the bucket, ending in ``/``:
        ``<prefix>/users/<user>/<server or "default">/``.""",
    ).tag(config=True)

    s3_endpoint_url = Unicode(
        help="S3 endpoint URL; empty for AWS or the standard AWS_ENDPOINT_URL_S3 variable.",
    ).tag(config=True)

    s3_region = Unicode(help="S3 region; empty for the standard AWS configuration.").tag(
        config=True
    )

    s3_credentials_url = Unicode(
        help="""The hub's credential broker, where the server renews short-lived S3
        credentials; empty: the standard AWS chain (keys that do not expire).""",
    ).tag(config=True)

    sync_concurrency = Int(
        16, help="How many paths are pushed to S3 at once by the watcher and at startup."
    ).tag(config=True)

    sync_max_backoff = Float(
        5.0, help="Longest wait, in seconds, between retries of pushes that failed."
    ).tag(config=True)

    sync_save_timeout = Float(
        10.0,
        help="""Seconds a save, upload, rename, copy, delete or new folder waits for S3
        before it answers 503 naming S3 (the local copy is kept, and pushed once S3
        answers). Set from ``c.CodePilot.sync_save_timeout``.""",
    ).tag(config=True)

    _workspace_sync: WorkspaceSync | None = None

    @property
    def location(self) -> WorkspaceLocation:
        """The extension's ``workspace_location``, else one from the ``s3_*`` traits."""
        if self.workspace_location is not None:
            ignored = [name for name in STANDALONE_S3_TRAITS if getattr(self, name)]
            if ignored:
                self.log.warning(
                    "SyncContentsManager: %s not read: the workspace's S3 settings are "
                    "c.CodePilot's",
                    ", ".join(ignored),
                )
            return self.workspace_location
        if not self.s3_bucket or not self.s3_key_prefix:
            raise ValueError("SyncContentsManager needs s3_bucket and s3_key_prefix")
        return WorkspaceLocation(
            self.s3_bucket,
            key_prefix=self.s3_key_prefix,
            endpoint_url=self.s3_endpoint_url,
            region=self.s3_region,
            credentials_url=self.s3_credentials_url,
        )

    @property
    def workspace_sync(self) -> WorkspaceSync:
        if self._workspace_sync is None:
            location = self.location
            self._workspace_sync = WorkspaceSync(
                self.root_dir,
                S3Store(location),
                location.key_prefix,
                log=self.log,
                concurrency=self.sync_concurrency,
                max_backoff=self.sync_max_backoff,
            )
        return self._workspace_sync

    async def close(self) -> None:
        """Close the S3 client. Code Pilot's extension does it (after a flush) when the
        server stops; whatever else runs this manager calls it when done."""
        if self._workspace_sync is not None:
            await self._workspace_sync.store.close()

    async def _within_bound(self, work, paths: list[str]):
        """Await ``work`` (pushes of ``paths``) for ``sync_save_timeout`` seconds at most;
        fail the request naming S3 when it fails or does not answer. The local copy stays
        and the paths stay pending until S3 takes them."""
        sync = self.workspace_sync
        try:
            return await asyncio.wait_for(work, self.sync_save_timeout)
        except TimeoutError:
            error = S3Error(
                f"S3 did not answer within {self.sync_save_timeout:g} s ({sync.store.where})",
                unreachable=True,
            )
        except S3Error as caught:
            error = caught
        except LayoutError as caught:  # no key can hold the name: retrying cannot help
            sync.unstorable(paths[-1], caught)
            raise self._s3_http_error(paths[-1], S3Error(str(caught))) from caught
        sync.mark_failed(paths, error)
        raise self._s3_http_error(paths[-1], error) from error

    async def _mirror(self, path: str, **push_options) -> None:
        """Push ``path`` to S3 or fail the request saying so; the local copy stays. The
        manifest on disk records it before the request is answered, so a restore after a
        crash knows the acknowledged version as the one S3 and the disk agreed on."""
        sync = self.workspace_sync
        await self._within_bound(sync.push_path(path, **push_options), [path])
        await sync.write_manifest()

    def _s3_http_error(self, path: str, error: Exception) -> web.HTTPError:
        self.log.error("S3 sync of %s failed: %s", path or "/", error)
        unreachable = getattr(error, "unreachable", False)
        return web.HTTPError(
            503 if unreachable else 502,
            f"{path or '/'} is saved on the server's disk but NOT in S3: {error}. "
            "The server keeps the local copy and retries until S3 holds it.",
            reason="S3 unavailable" if unreachable else "S3 error",
        )

    async def save(self, model, path=""):
        with recorded_writes() as writes:
            saved = await super().save(model, path)
        chunk = model.get("chunk")
        if chunk is None or chunk == -1:  # earlier chunks are not a finished save
            # A write uploads even when its size and mtime look unchanged (the same
            # size within the filesystem's timestamp tick); a save that wrote nothing
            # uploads only what S3 does not hold yet.
            wrote = not writes or any(writes)
            await self._mirror(path.strip("/"), force=wrote)
        return saved

    async def delete_file(self, path):
        await super().delete_file(path)
        await self._mirror(path.strip("/"), list_remote=True)

    async def rename_file(self, old_path, new_path):
        await super().rename_file(old_path, new_path)
        old, new = old_path.strip("/"), new_path.strip("/")
        if old == new:
            return
        await self._within_bound(self.workspace_sync.rename(old, new), [old, new])

    async def copy(self, from_path, to_path=None):
        # Files are copied through self.save, which mirrors them; folders are not.
        copied = await super().copy(from_path, to_path)
        if copied["type"] == "directory":
            push = self.workspace_sync.push_tree(copied["path"])
            failures = await self._within_bound(push, [copied["path"]])
            if failures:
                raise self._s3_http_error(copied["path"], next(iter(failures.values())))
        return copied

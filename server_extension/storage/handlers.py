"""``GET <server>/codepilot/api/sync``: how the workspace's S3 copy is doing."""

import json

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

SYNC_STATUS_PATH = "codepilot/api/sync"


class SyncStatusHandler(APIHandler):
    """Storage mode, pending paths, last error and last successful sync, as JSON.

    Readable by whoever may read the workspace's contents. Field names are stable (the
    JupyterLab status item reads them); times are UTC, ``YYYY-MM-DDTHH:MM:SSZ``.

    Every mode:

    - ``storage``: ``"local"``, ``"sync"`` or ``"s3"``.
    - ``pending``: how many paths wait for a push (always 0 outside ``sync``).
    - ``last_success``: time of the last change S3 took, or null.
    - ``last_error``: ``{"message", "path", "at"}`` of the last failed push, or null;
      the message names S3 and says why.
    - ``location``: ``s3://<bucket>/<prefix>/users/<user>/<server>/`` (``sync``, ``s3``).

    ``sync`` mode adds:

    - ``state``: what the mirror is doing:

      - ``"starting"``: the server has not started mirroring yet;
      - ``"reconciling"``: pushing what changed while no server ran;
      - ``"syncing"``: pushing changes;
      - ``"retrying"``: a push failed (see ``last_error``); retried with backoff;
      - ``"idle"``: nothing pending, S3 holds the workspace;
      - ``"stalled"``: paths are pending and no push has finished for
        ``stall_timeout`` seconds (S3 down or hanging); the log has a warning too;
      - ``"error"``: the watcher and the rescans that replace it stopped
        (``watcher_error``): terminal changes are no longer mirrored until the server
        restarts; editor saves still are;
      - ``"stopped"``: the server is shutting down and has flushed (``unflushed``).

    - ``pending_paths``: the first 50 pending paths.
    - ``last_progress``: when a push last finished, or nothing last waited.
    - ``stalled_since``: when the stall was detected, or null.
    - ``stall_timeout``: seconds without progress before ``"stalled"``.
    - ``watcher_error``: why the watcher stopped, or null.
    - ``watcher_degraded``: why terminal changes are found by rescans every few
      seconds instead of events (a file name that is not UTF-8, the inotify watch
      limit), or null.
    - ``conflicts``: files the start's restore found changed both locally and in S3:
      name -> ``<name>.conflict-<time>``, where the local version was kept (S3's took
      the name); listed while the kept copy is there.
    - ``unstorable``: the first 50 paths whose S3 key would be longer than S3 allows
      (kept on local disk only).
    - ``synced_objects``: objects the manifest says S3 holds for this workspace.
    - ``unflushed``: paths a stopping server could not push (kept on local disk).
    """

    auth_resource = "contents"

    def initialize(self, status_source):
        # A callable, so the reply is always the current state.
        self.status_source = status_source

    @web.authenticated
    @authorized
    async def get(self):
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(self.status_source()))

"""``GET <server>/codepilot/api/sync``: how the workspace's S3 copy is doing."""

import json

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

SYNC_STATUS_PATH = "codepilot/api/sync"


class SyncStatusHandler(APIHandler):
    """Storage mode, pending paths, last error and last successful sync, as JSON.

    Readable by whoever may read the workspace's contents.
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

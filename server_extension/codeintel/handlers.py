"""``GET <server>/codepilot/api/language-servers``: which language servers are stopped, and
why, for the status bar."""

import json

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

LANGUAGE_SERVERS_PATH = "codepilot/api/language-servers"


class LanguageServersHandler(APIHandler):
    """``{"stopped": {<language server>: <what the status bar says>}}``: the language
    servers that crashed more often than they may be restarted, until one starts again
    (an editor that connects afresh, as after a reload, starts it). Readable by whoever
    may use the language servers."""

    auth_resource = "lsp"  # jupyter-lsp's own

    def initialize(self, stopped_source):
        # A callable: None while the watchdog is not running (code intelligence off).
        self.stopped_source = stopped_source

    @web.authenticated
    @authorized
    async def get(self):
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"stopped": self.stopped_source()}))

"""What both spawners share: the Code Pilot settings, a server's environment, its restore.

``CodePilotSpawnerMixin`` comes first in the bases of ``CodePilotLocalSpawner`` (a
process, ``local.py``) and ``CodePilotSpawner`` (a pod, ``kube.py``). It holds the
settings a user server gets whatever runs it (starters, ``c.CodePilot``
settings, the S3 settings, the credential broker's URL, preview origins), assembles them
into the ``CODEPILOT_*`` environment of the contract (``codepilot_contracts.env``), and
turns the restore command's progress lines (``codepilot_contracts.restoreprogress``) into
progress events. Each spawner adds only what differs: where the server runs, how its
workspace is prepared and how S3 credentials reach it.
"""

from urllib.parse import urlsplit

from traitlets import Dict, Enum, Instance, Int, List, Unicode, default, observe
from traitlets.config import LoggingConfigurable

from codepilot_contracts.defaults import PREVIEW_PORT
from codepilot_contracts.env import settings_environment
from codepilot_contracts.restoreprogress import RESTORE_COMMAND, restore_message, restore_share
from codepilot_contracts.starters import PACKAGED_STARTERS

from ..s3settings import STS, S3Settings
from ..services.preview.hosts import PreviewDomain
from ..upstream_api.jupyterhub import named_server_limit
from .projectlimits import SERVER_TOKEN_SCOPES, check_server_name, project_limit_of


def restore_progress_event(record: dict, start: int, end: int) -> dict | None:
    """A restore progress record as a progress event between ``start`` and ``end`` percent.

    None when the record is not a progress record (a log line, ``done``, ``error``).
    """
    share = restore_share(record)
    if share is None:
        return None
    return {"progress": start + int((end - start) * share), "message": restore_message(record)}


def s3_server_settings(s3: S3Settings | None, credentials_url: str) -> dict:
    """The ``c.CodePilot`` S3 settings of a server: where its workspace lives in S3.

    ``credentials_url`` is passed only in sts mode, where servers renew their short-lived
    keys at the broker; static keys never expire.
    """
    if s3 is None or not s3.bucket:
        return {}
    settings = {
        "s3_bucket": s3.bucket,
        "s3_prefix": s3.prefix,
        "s3_endpoint_url": s3.endpoint_url or None,
        "s3_region": s3.region or None,
    }
    if s3.mode == STS:
        settings["credentials_url"] = credentials_url or None
    return settings


class CodePilotSpawnerMixin(LoggingConfigurable):
    """The Code Pilot layer of a spawner; list it before the upstream spawner class.

    A subclass provides ``preview_port`` (the app's port inside the server's network)
    and ``previews_served`` (whether the preview gateway can reach that app).
    """

    starters = List(
        Unicode(),
        default_value=list(PACKAGED_STARTERS),
        help="""Starters offered when a server starts: packaged starters or folders under
        ``<prefix>/templates/`` in S3 (``templates`` is the stored name of the starters
        folder). One machine offers them in the spawn form (``{"starter": name}`` in a
        REST start); Kubernetes makes them the ``profile_list``, each with every size.
        Copied only into a new workspace.""",
    ).tag(config=True)

    starter = Unicode(
        "",
        help="""The starter copied into this server's workspace on its first start
        (``CODEPILOT_STARTER``); set from the user's choice (form, REST body or profile).""",
    ).tag(config=True)

    # The old names of renamed traits, still read as JupyterHub reads its own: setting
    # one (in config, or by a profile's kubespawner_override) warns and sets the new one.
    _deprecated_aliases = {"templates": "starters", "template": "starter"}

    # None until set, so that setting one to its empty value is seen too.
    templates = List(
        Unicode(), default_value=None, allow_none=True, help="Deprecated: use ``starters``."
    ).tag(config=True)
    template = Unicode(None, allow_none=True, help="Deprecated: use ``starter``.").tag(config=True)

    @observe(*_deprecated_aliases)
    def _deprecated_trait(self, change):
        new_name = self._deprecated_aliases[change.name]
        if getattr(self, new_name) != change.new:  # the same value under both names is quiet
            cls = type(self).__name__
            self.log.warning("%s.%s is deprecated: use %s.%s", cls, change.name, cls, new_name)
            setattr(self, new_name, change.new)

    codepilot_settings = Dict(
        help="""More ``c.CodePilot`` settings for every server, by trait name (for example
        ``{"storage": "sync"}``), passed as ``CODEPILOT_*`` variables. The settings the
        spawner computes (S3, starter, preview) win over the same names here.""",
    ).tag(config=True)

    s3 = Instance(
        S3Settings,
        allow_none=True,
        help="""Where workspaces live in S3 and how servers get keys for them (a
        ``codepilot_spawner.s3settings.S3Settings``); None keeps workspaces on the
        server's disk only. Both hub configs build it once, from the Helm values or the
        ``CODEPILOT_S3_*`` variables.""",
    ).tag(config=True)

    credentials_url = Unicode(
        "",
        help="""URL of the credential broker's ``api/credentials`` endpoint as servers
        reach it (``CODEPILOT_CREDENTIALS_URL``); in sts mode servers get and renew their
        per-user S3 credentials there. Set with the broker by
        ``codepilot_spawner.services.broker.broker_wiring``.""",
    ).tag(config=True)

    restore_command = List(
        Unicode(),
        help="""Command that fills a new or stale workspace from S3 or its starter before
        the server starts (``python -P -m server_extension.sync restore --progress json``),
        run as the server's user with the server's environment. Its JSON progress lines
        become progress events.""",
    ).tag(config=True)

    preview_domain = Unicode(
        "",
        help="""Domain of preview origins (``<label>.<domain>``); empty: no preview URL.
        Each server gets its own as ``CODEPILOT_PREVIEW_URL``.""",
    ).tag(config=True)

    preview_scheme = Enum(["http", "https"], "https", help="Scheme of preview URLs.").tag(
        config=True
    )

    preview_origin_port = Int(
        0,
        help="Port in preview URLs (where the preview gateway listens); 0: the scheme's own.",
    ).tag(config=True)

    preview_api_url = Unicode(
        "",
        help="""Base URL of the preview gateway's API as servers reach it, where a server
        reads and sets its preview's share level (``CODEPILOT_PREVIEW_API_URL``).""",
    ).tag(config=True)

    preview_port = PREVIEW_PORT
    previews_served = True

    @default("restore_command")
    def _default_restore_command(self):
        return ["python", *RESTORE_COMMAND]

    @default("cmd")
    def _default_cmd(self):
        # jupyterhub-singleuser with what a server does not use at start deferred; a
        # console script keeps the working directory (the workspace) off sys.path.
        return ["codepilot-singleuser"]

    @default("default_url")
    def _default_default_url(self):
        return "/lab"

    @default("server_token_scopes")
    def _default_server_token_scopes(self):
        return list(SERVER_TOKEN_SCOPES)

    @property
    def server_label(self) -> str:
        """``alice`` or ``alice:project``, as the hub's own log names servers."""
        return f"{self.user.name}:{self.name}" if self.name else self.user.name

    async def rename(self, old_name, new_name):
        """JupyterHub's rename (``PATCH`` of a server's name) checks the new name's form
        only: a route's name is refused here with the reason, before anything moves."""
        check_server_name(new_name)
        await super().rename(old_name, new_name)

    def check_name(self) -> None:
        """A 400 that says why, when this server's name is one of a server's own routes."""
        check_server_name(self.name)

    def get_env(self):
        # Named at each start: the groups the owner is in now.
        self.oauth_access_scopes = server_access_scopes(
            self.user.name, self.name, [group.name for group in self.user.groups]
        )
        return super().get_env()

    def preview_url(self) -> str | None:
        if not (self.preview_domain and self.previews_served):
            return None
        domain = PreviewDomain(self.preview_domain, self.preview_scheme, self.preview_origin_port)
        return domain.url(self.user.name, self.name)

    def server_settings(self) -> dict:
        """The ``c.CodePilot`` settings of this start, by trait name; None: the default."""
        settings = {"storage": "sync"} if self.s3 and self.s3.bucket else {}
        settings.update(self.codepilot_settings)
        settings.update(s3_server_settings(self.s3, self.credentials_url))
        settings.update(preview_port=self.preview_port, starter=self.starter or None)
        # The hub's project limit, for the switcher's check as a name is typed.
        limit = named_server_limit(self.user)
        settings.update(project_limit=project_limit_of(limit))
        preview_url = self.preview_url()
        if preview_url:
            settings.update(preview_url=preview_url, preview_api_url=self.preview_api_url or None)
        return settings

    def codepilot_env(self) -> dict[str, str]:
        """This start's settings as the ``CODEPILOT_*`` variables its server reads, and
        what dev servers started in it read to accept their preview's host."""
        return {
            **settings_environment(self.server_settings()),
            **dev_server_env(self.preview_url()),
        }

    @property
    def needs_restore(self) -> bool:
        """Whether the workspace has anywhere to come from: S3 or a starter."""
        return bool((self.s3 and self.s3.bucket) or self.starter)


def dev_server_env(preview_url: str) -> dict[str, str]:
    """Variables that make dev servers accept requests for the preview's host.

    Vite (5.4.12 and later) answers "Blocked request. This host is not allowed" to hosts
    other than localhost, ``*.localhost`` and IP addresses; it adds the hosts of
    ``__VITE_ADDITIONAL_SERVER_ALLOWED_HOSTS`` to ``server.allowedHosts``.
    """
    host = urlsplit(preview_url).hostname if preview_url else None
    return {"__VITE_ADDITIONAL_SERVER_ALLOWED_HOSTS": host} if host else {}


def server_access_scopes(user: str, server: str, groups: list[str]) -> list[str]:
    """The scopes that open a server (``Spawner.oauth_access_scopes``): JupyterHub's two,
    and one per group of its owner.

    A server checks a token's scopes without resolving groups (JupyterHub's
    ``services.auth.check_scopes``), so a teacher's API token with
    ``access:servers!group=students`` would get 403 at a student's server, although
    the hub grants it, unless the server names its owner's groups too.
    """
    return [
        f"access:servers!server={user}/{server}",
        f"access:servers!user={user}",
        *(f"access:servers!group={group}" for group in sorted(groups)),
    ]

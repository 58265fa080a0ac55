"""``CodePilotSpawner``: KubeSpawner with Code Pilot's pods, credentials and progress.

A thin subclass. The objects come from ``objects.py``, the credentials from
``credentials.py``; this class only sets KubeSpawner's traits from them and fills in
KubeSpawner's hooks: ``get_pod_manifest`` (the restore init container, preview port and
relay), ``modify_pod_hook`` (the per-server Secret, created before the pod that reads
it), ``after_pod_created_hook`` (the Secret then gets the pod as its owner) and
``progress``.
"""

import asyncio
import contextlib
import secrets
from functools import partial

from jupyterhub.utils import exponential_backoff
from kubernetes_asyncio.client.rest import ApiException
from kubespawner import KubeSpawner
from traitlets import Dict, Enum, Int, List, Unicode, default

from . import objects
from .credentials import MODES, STS, CredentialMinter, S3Settings, credentials_environment
from .environment import codepilot_environment
from .preview.hosts import PreviewDomain
from .progress import restore_message, restore_share
from .servernames import check_server_name

# Variables that hold secrets: they reach containers from the server's Secret only.
TOKEN_KEYS = ("JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN")
STATIC_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
STS_KEYS = (*STATIC_KEYS, "AWS_SESSION_TOKEN", "CODEPILOT_S3_CREDENTIALS_EXPIRATION")

RESTORE_POLL_SECONDS = 2
# With no sizes configured: one, with the spawner's own cpu and memory settings.
DEFAULT_SIZE = {"name": "standard", "displayName": "Standard"}


async def _create_server_secret_hook(spawner, pod):
    """modify_pod_hook: the Secret exists before the pod that reads it is created."""
    await spawner.create_server_secret()
    return pod


async def _own_server_secret_hook(spawner, pod):
    """after_pod_created_hook: the pod now has a uid; make it the Secret's owner."""
    await spawner.adopt_server_secret(pod)


def _chain_hooks(ours, theirs, returns_pod: bool):
    """Our hook first (the pod cannot start without it), then an admin's own hook."""

    async def both_hooks(spawner, pod):
        result = await ours(spawner, pod)
        if returns_pod:
            pod = result
        result = theirs(spawner, pod)
        if asyncio.iscoroutine(result):
            result = await result
        return result if returns_pod else None

    return both_hooks


class CodePilotSpawner(KubeSpawner):
    """Starts each user server as a hardened pod of the runner image.

    An init container restores the workspace from S3 into an emptyDir; the server gets
    its ``CODEPILOT_*`` settings, serves previews on ``preview_port`` and flushes to S3
    within ``termination_grace_period`` when stopped. Its S3 credentials and API token
    reach it from a Secret of its own, never in clear text in the pod spec.
    """

    release = Unicode(
        "",
        help="""Helm release name: the ``app.kubernetes.io/instance`` label of user pods,
        which the chart's network policies select.""",
    ).tag(config=True)

    workspace_dir = Unicode(
        "/workspace",
        help="Where the workspace emptyDir is mounted; the server's root and working dir.",
    ).tag(config=True)

    workspace_size_limit = Unicode(
        "10Gi",
        help="""``sizeLimit`` of the workspace emptyDir (a Kubernetes quantity). A pod that
        writes more is evicted; its files up to then are in S3.""",
    ).tag(config=True)

    preview_port = Int(
        3000, help="Port inside the pod where the user's app serves its preview."
    ).tag(config=True)

    preview_relay_port = Int(
        0,
        help="""Port of the pod's preview relay, a sidecar that carries the preview
        gateway's connections from ``<pod IP>:<this port>`` to the app on
        ``127.0.0.1:<preview_port>`` (dev servers listen on loopback only). 0: no relay,
        and no preview through the gateway.""",
    ).tag(config=True)

    preview_relay_command = List(
        Unicode(),
        ["python", "-m", "server_extension.relay"],
        help="""Command of the preview relay sidecar (runner image); ``--listen-port`` and
        ``--target-port`` are appended.""",
    ).tag(config=True)

    preview_relay_resources = Dict(
        {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"cpu": "1", "memory": "96Mi"}},
        help="Resources (a Kubernetes ResourceRequirements) of the preview relay sidecar.",
    ).tag(config=True)

    preview_domain = Unicode(
        "",
        help="""Domain of preview origins (``<label>.<domain>``); empty: previews are off.
        Each server gets its preview URL as ``CODEPILOT_PREVIEW_URL``.""",
    ).tag(config=True)

    preview_scheme = Enum(["http", "https"], "https", help="Scheme of preview URLs.").tag(
        config=True
    )

    preview_api_url = Unicode(
        "",
        help="""Base URL of the preview gateway's API as user pods reach it, where a
        server reads and sets its preview's share level (``CODEPILOT_PREVIEW_API_URL``).""",
    ).tag(config=True)

    termination_grace_period = Int(
        60,
        help="""Seconds a stopping server gets to flush pending changes to S3 before it is
        killed. Also used as KubeSpawner's ``delete_grace_period``; the server's own flush
        time (``CODEPILOT_SYNC_FLUSH_TIMEOUT``) is derived from it.""",
    ).tag(config=True)

    restore_command = List(
        Unicode(),
        ["python", "-m", "server_extension.sync", "restore", "--progress", "json"],
        help="""Command of the init container that restores the workspace from S3 into
        ``workspace_dir`` (its working directory) before the server starts. Its JSON
        progress lines (``{"done": n, "total": m}``) become progress events.""",
    ).tag(config=True)

    templates = List(
        Unicode(),
        help="""Starter templates offered in the spawn form (names under
        ``<prefix>/templates/`` in S3). With ``sizes``, they make the ``profile_list``.""",
    ).tag(config=True)

    sizes = List(
        help="""Sizes offered for every template, as in the Helm values:
        ``{"name", "displayName", "cpu": {"guarantee", "limit"}, "memory": {...},
        "default"}``.""",
    ).tag(config=True)

    template = Unicode(
        "",
        help="""Starter template copied into a workspace on its first start; set by the
        chosen profile.""",
    ).tag(config=True)

    codepilot_settings = Dict(
        help="""More ``c.CodePilot`` settings for every server, by trait name; passed as
        ``CODEPILOT_*`` variables. The settings above win over the same names here.""",
    ).tag(config=True)

    s3_bucket = Unicode("", help="Bucket of the workspaces; empty keeps them in the pod only.").tag(
        config=True
    )
    s3_prefix = Unicode("codepilot", help="Key prefix of everything Code Pilot stores.").tag(
        config=True
    )
    s3_endpoint_url = Unicode(
        "", help="S3 (and STS) endpoint for MinIO or other S3 services; empty for AWS."
    ).tag(config=True)
    s3_region = Unicode("us-east-1", help="Region of the bucket and of STS.").tag(config=True)
    credentials_mode = Enum(
        MODES,
        STS,
        help="""``sts``: each server gets short-lived keys for its user's prefix only.
        ``static``: every server gets the hub's own keys, so users can reach each other's
        files; only for S3 services without STS.""",
    ).tag(config=True)
    credentials_role_arn = Unicode(
        "", help="Role the hub assumes (with a per-user session policy) in sts mode."
    ).tag(config=True)
    credentials_duration = Int(
        3600, help="Lifetime in seconds of the credentials minted per server in sts mode."
    ).tag(config=True)
    credentials_url = Unicode(
        "",
        help="""URL of the credential broker's ``api/credentials`` endpoint as user pods
        reach it; servers renew their sts credentials there before they expire.""",
    ).tag(config=True)

    _minters: dict = {}

    # Where the preview gateway reaches this server's relay, and which start it is.
    start_id = ""
    preview_host = ""

    # --- KubeSpawner defaults -------------------------------------------------------------

    @default("uid")
    def _default_uid(self):
        return 1000

    @default("pod_security_context")
    def _default_pod_security_context(self):
        return objects.pod_security_context(self.uid)

    @default("container_security_context")
    def _default_container_security_context(self):
        return objects.container_security_context(self.uid)

    @default("automount_service_account_token")
    def _default_automount(self):
        return False

    @default("cmd")
    def _default_cmd(self):
        return ["jupyterhub-singleuser"]

    @default("default_url")
    def _default_default_url(self):
        return "/lab"

    @default("notebook_dir")
    def _default_notebook_dir(self):
        return self.workspace_dir

    @default("working_dir")
    def _default_working_dir(self):
        return self.workspace_dir

    @default("volumes")
    def _default_volumes(self):
        return [objects.workspace_volume(self.workspace_size_limit)]

    @default("volume_mounts")
    def _default_volume_mounts(self):
        return [objects.workspace_mount(self.workspace_dir)]

    @default("common_labels")
    def _default_common_labels(self):
        return objects.common_labels(self.release)

    @default("extra_pod_config")
    def _default_extra_pod_config(self):
        return {"terminationGracePeriodSeconds": self.termination_grace_period}

    @default("delete_pvc")
    def _default_delete_pvc(self):
        # Workspaces are emptyDirs backed by S3: there is no claim to delete, and the hub's
        # Role then needs no rights on PVCs at all.
        return False

    @default("delete_grace_period")
    def _default_delete_grace_period(self):
        return self.termination_grace_period

    @default("profile_list")
    def _default_profile_list(self):
        if not self.templates:
            return []
        return objects.make_profile_list(self.templates, self.sizes or [DEFAULT_SIZE])

    @default("modify_pod_hook")
    def _default_modify_pod_hook(self):
        return _create_server_secret_hook

    @default("after_pod_created_hook")
    def _default_after_pod_created_hook(self):
        return _own_server_secret_hook

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.modify_pod_hook is not _create_server_secret_hook:
            self.modify_pod_hook = _chain_hooks(
                _create_server_secret_hook, self.modify_pod_hook, returns_pod=True
            )
        if self.after_pod_created_hook is not _own_server_secret_hook:
            self.after_pod_created_hook = _chain_hooks(
                _own_server_secret_hook, self.after_pod_created_hook, returns_pod=False
            )

    # --- settings and credentials -----------------------------------------------------------

    @property
    def s3_settings(self) -> S3Settings:
        return S3Settings(
            bucket=self.s3_bucket,
            prefix=self.s3_prefix,
            endpoint_url=self.s3_endpoint_url,
            region=self.s3_region,
            mode=self.credentials_mode,
            role_arn=self.credentials_role_arn,
            duration_seconds=self.credentials_duration,
        )

    @property
    def minter(self) -> CredentialMinter:
        # One per settings, shared by all servers: it keeps its STS client.
        settings = self.s3_settings
        if settings not in self._minters:
            self._minters[settings] = CredentialMinter(settings, log=self.log)
        return self._minters[settings]

    @property
    def server_secret_name(self) -> str:
        return f"{self.pod_name}-credentials"

    def server_secret_keys(self) -> tuple[str, ...]:
        if not self.s3_bucket:
            return TOKEN_KEYS
        return (*TOKEN_KEYS, *(STS_KEYS if self.credentials_mode == STS else STATIC_KEYS))

    def codepilot_env(self) -> dict[str, str]:
        settings = {
            **self.codepilot_settings,
            "preview_port": self.preview_port,
            "template": self.template or None,
            # Pending pushes get the pod's grace period, less the time to shut down.
            "sync_flush_timeout": objects.sync_flush_timeout(self.termination_grace_period),
        }
        if self.preview_domain and self.preview_relay_port:
            domain = PreviewDomain(self.preview_domain, self.preview_scheme)
            settings["preview_url"] = domain.url(self.user.name, self.name)
            settings["preview_api_url"] = self.preview_api_url or None
        if self.s3_bucket:
            settings.update(
                storage="sync",
                s3_bucket=self.s3_bucket,
                s3_prefix=self.s3_prefix,
                s3_endpoint_url=self.s3_endpoint_url or None,
                s3_region=self.s3_region,
            )
            if self.credentials_mode == STS:
                settings["credentials_url"] = self.credentials_url or None
        return codepilot_environment(settings)

    def _split_env(self) -> tuple[dict, dict]:
        """(the pod's environment without secrets, the values its Secret holds)."""
        env = {**super().get_env(), **self.codepilot_env()}
        return objects.split_secret_env(env, self.server_secret_keys())

    def server_secret_values(self) -> dict:
        """The secret variables of this start (its API token), as the Secret stores them."""
        return self._split_env()[1]

    def get_env(self):
        env, _ = self._split_env()
        env.update(objects.secret_env(self.server_secret_name, self.server_secret_keys()))
        return env

    async def create_server_secret(self) -> None:
        """Create this start's Secret, before the pod: its containers read it when created.

        Any Secret of the same name (a previous start's, with its old token and keys) is
        deleted first and waited for, so the pod can never read a stale one. The Secret
        gets its owner, the pod, once the pod exists (``adopt_server_secret``).
        """
        values = self.server_secret_values()
        if self.s3_bucket:
            values.update(credentials_environment(await self.minter.mint(self.user.name)))
        missing = set(self.server_secret_keys()) - set(values)
        if missing:
            raise RuntimeError(f"no value for {', '.join(sorted(missing))} of {self._log_name}")
        labels = self._build_common_labels(self._expand_all(self.extra_labels))
        secret = objects.make_server_secret(
            self.server_secret_name, values, None, labels, self.start_id
        )
        name = secret.metadata.name
        await exponential_backoff(
            partial(self._ensure_not_exists, "secret", name), f"Could not delete secret {name}"
        )
        await exponential_backoff(
            partial(self._make_create_resource_request, "secret", secret),
            f"Could not create secret {name}",
        )

    async def adopt_server_secret(self, pod: dict) -> None:
        """Make the pod the Secret's owner: Kubernetes deletes the Secret with the pod."""
        owner = objects.make_owner_reference(self.pod_name, pod["metadata"]["uid"])
        await self.api.patch_namespaced_secret(
            name=self.server_secret_name,
            namespace=self.namespace,
            body=objects.owner_reference_patch(owner),
        )

    # --- hooks ----------------------------------------------------------------------------

    async def start(self):
        check_server_name(self.name)
        # New at every start: the preview gateway ends sign-ins to a previous start.
        self.start_id = secrets.token_hex(8)
        self.preview_host = ""
        url = await super().start()
        pod = self.pod_reflector.pods.get(f"{self.namespace}/{self.pod_name}")
        self.preview_host = objects.pod_ip(pod) or ""
        return url

    def get_state(self):
        state = super().get_state()
        if self.start_id:
            state["start_id"] = self.start_id
        if self.preview_host and self.preview_relay_port:
            # Read by the preview gateway (hub API, admin:server_state): where the relay
            # of this start listens, and the app's own port for its "no app" page.
            state["preview_host"] = self.preview_host
            state["preview_port"] = self.preview_relay_port
            state["preview_app_port"] = self.preview_port
        return state

    def load_state(self, state):
        super().load_state(state)
        self.start_id = state.get("start_id", "")
        self.preview_host = state.get("preview_host", "")

    def clear_state(self):
        super().clear_state()
        self.start_id = ""
        self.preview_host = ""

    async def get_pod_manifest(self):
        pod = await super().get_pod_manifest()
        pod = objects.add_restore_and_preview(
            pod, self.restore_command, self.workspace_dir, self.preview_port
        )
        if self.start_id:
            objects.annotate_start(pod, self.start_id)
        if self.preview_relay_port:
            pod = objects.add_preview_relay(
                pod,
                self.preview_relay_command,
                self.preview_relay_port,
                self.preview_port,
                self.preview_relay_resources,
            )
        return pod

    async def stop(self, now=False):
        await super().stop(now=now)
        # The owner reference removes it too; deleting now keeps no keys around meanwhile.
        try:
            await self.api.delete_namespaced_secret(
                name=self.server_secret_name, namespace=self.namespace
            )
        except ApiException as error:
            if error.status != 404:
                self.log.warning("Could not delete %s: %s", self.server_secret_name, error)

    async def progress(self):
        """Pod events said plainly, with restore counts from the init container's log."""
        queue = asyncio.Queue()
        done = object()

        async def pod_events():
            try:
                async for event in super(CodePilotSpawner, self).progress():
                    raw = event.get("raw_event")
                    message = objects.describe_event(raw) if raw else event.get("message")
                    if message:
                        await queue.put({"progress": event.get("progress"), "message": message})
            finally:
                await queue.put(done)

        events_task = asyncio.create_task(pod_events())
        restore_task = asyncio.create_task(self._follow_restore(queue))
        try:
            while (event := await queue.get()) is not done:
                yield {key: value for key, value in event.items() if value is not None}
        finally:
            for task in (events_task, restore_task):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _follow_restore(self, queue: asyncio.Queue) -> None:
        """Report restore counts while the init container runs, and once when it ends."""
        ref_key = f"{self.namespace}/{self.pod_name}"
        last = None
        while True:
            await asyncio.sleep(RESTORE_POLL_SECONDS)
            pod = self.pod_reflector.pods.get(ref_key) if self.pod_reflector else None
            state = objects.container_state(pod, objects.RESTORE_CONTAINER)
            if state not in ("running", "terminated"):
                continue
            try:
                log_text = await self.api.read_namespaced_pod_log(
                    name=self.pod_name,
                    namespace=self.namespace,
                    container=objects.RESTORE_CONTAINER,
                    tail_lines=20,
                )
            except ApiException as error:
                self.log.debug("No restore log for %s yet: %s", self._log_name, error)
                continue
            record = objects.last_restore_progress(log_text)
            if record and record != last:
                last = record
                share = restore_share(record)
                await queue.put(
                    {"progress": 50 + int(30 * share), "message": restore_message(record)}
                )
            if state == "terminated":
                return

"""``CodePilotSpawner``: KubeSpawner with Code Pilot's pods, credentials and progress.

A thin subclass. What both spawners share (settings, environment, restore progress)
comes from ``core.py``, the objects from ``objects.py``, what a pod's status and events
say from ``podstatus.py``, the credentials from ``credential_minter.py``; this class only sets
KubeSpawner's traits from them and fills in KubeSpawner's hooks: ``get_pod_manifest``
(the restore init container, preview port and relay), ``modify_pod_hook`` (the
per-server Secret, created before the pod that reads it), ``after_pod_created_hook``
(the Secret then gets the pod as its owner) and ``progress``.
"""

import asyncio
import contextlib
import secrets
from functools import partial

from jupyterhub.utils import exponential_backoff
from kubernetes_asyncio.client.rest import ApiException
from kubespawner import KubeSpawner
from kubespawner.objects import make_owner_reference
from traitlets import Dict, Int, List, Unicode, default

from codepilot_contracts.defaults import PREVIEW_PORT
from codepilot_contracts.env import CREDENTIALS_EXPIRATION
from codepilot_contracts.restoreprogress import last_record

from ..credential_minter import CredentialMinter, credentials_environment
from ..kubernetes import objects, podstatus
from ..s3settings import STS
from ..upstream_api import kubespawner as kubespawner_api
from .core import CodePilotSpawnerMixin, restore_progress_event
from .previewroute import PreviewRoute

# Variables that hold secrets: they reach containers from the server's Secret only.
TOKEN_KEYS = ("JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN")
STATIC_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
STS_KEYS = (*STATIC_KEYS, "AWS_SESSION_TOKEN", CREDENTIALS_EXPIRATION)

RESTORE_POLL_SECONDS = 2
# With no sizes configured: one, with the spawner's own cpu and memory settings.
DEFAULT_SIZE = {"name": "standard", "displayName": "Standard"}


async def _create_server_secret_hook(spawner, pod):
    """modify_pod_hook: the Secret exists before the pod that reads it is created."""
    await spawner.create_server_secret(pod)
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


class CodePilotSpawner(CodePilotSpawnerMixin, KubeSpawner):
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
        PREVIEW_PORT, help="Port inside the pod where the user's app serves its preview."
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
        ["python", "-m", "codepilot_spawner.kubernetes.relay"],
        help="""Command of the preview relay sidecar; ``--listen-port`` and
        ``--target-port`` are appended.""",
    ).tag(config=True)

    preview_relay_image = Unicode(
        "",
        help="""Image of the preview relay sidecar. The chart gives the hub's own image,
        so the relay is always the version the hub's preview gateway speaks to, whatever
        the runner's tag. Empty: the server's image.""",
    ).tag(config=True)

    preview_relay_image_pull_policy = Unicode(
        "",
        help="Pull policy of ``preview_relay_image``. Empty: the server's.",
    ).tag(config=True)

    preview_relay_resources = Dict(
        {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"cpu": "1", "memory": "96Mi"}},
        help="Resources (a Kubernetes ResourceRequirements) of the preview relay sidecar.",
    ).tag(config=True)

    termination_grace_period = Int(
        60,
        help="""Seconds a stopping server gets to flush pending changes to S3 before it is
        killed. Also used as KubeSpawner's ``delete_grace_period``; the server's own flush
        time (``CODEPILOT_SYNC_FLUSH_TIMEOUT``) is derived from it.""",
    ).tag(config=True)

    sizes = List(
        help="""Sizes offered for every starter, as in the Helm values:
        ``{"name", "displayName", "cpu": {"guarantee", "limit"}, "memory": {...},
        "default"}``.""",
    ).tag(config=True)

    _minters: dict = {}

    # Where the preview gateway reaches this server's relay, which start it is, and
    # whether that relay takes only connections that name the start (pods started
    # before the check have relays that would pass the start line on to the app).
    start_id = ""
    preview_host = ""
    relay_checks_start = False
    relay_picks_port = False

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

    @default("pod_name_template")
    def _default_pod_name_template(self):
        # A running server keeps the name in its state (KubeSpawner): upgrades rename none.
        return objects.pod_name_template(self.release)

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
        if not self.starters:
            return []
        return objects.make_profile_list(self.starters, self.sizes or [DEFAULT_SIZE])

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
    def previews_served(self) -> bool:
        # The preview gateway reaches the app through the pod's relay only.
        return bool(self.preview_relay_port)

    @property
    def minter(self) -> CredentialMinter:
        # One per settings, shared by all servers: it keeps its STS client.
        if self.s3 not in self._minters:
            self._minters[self.s3] = CredentialMinter(self.s3, log=self.log)
        return self._minters[self.s3]

    _starting = False  # within start(): KubeSpawner's stop of an orphan pod is not ours

    @property
    def server_secret_name(self) -> str:
        return f"{self.pod_name}-credentials"

    def server_secret_keys(self) -> tuple[str, ...]:
        if not (self.s3 and self.s3.bucket):
            return TOKEN_KEYS
        return (*TOKEN_KEYS, *(STS_KEYS if self.s3.mode == STS else STATIC_KEYS))

    def server_settings(self) -> dict:
        # Pending pushes get the pod's grace period, less the time to shut down.
        flush = objects.sync_flush_timeout(self.termination_grace_period)
        return {**super().server_settings(), "sync_flush_timeout": flush}

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

    # --- the per-server Secret ----------------------------------------------------------------

    async def create_server_secret(self, pod) -> None:
        """Create this start's Secret, before ``pod``: its containers read it when created.

        Any Secret of the same name (a previous start's, with its old token and keys) is
        deleted first and waited for, so the pod can never read a stale one. The Secret
        carries the pod's labels but not its component, and gets the pod as its owner
        once the pod exists (``adopt_server_secret``).
        """
        values = self.server_secret_values()
        if self.s3 and self.s3.bucket:
            values.update(credentials_environment(await self.minter.mint(self.user.name)))
        missing = set(self.server_secret_keys()) - set(values)
        if missing:
            raise RuntimeError(f"no value for {', '.join(sorted(missing))} of {self.server_label}")
        secret = objects.make_server_secret(
            self.server_secret_name,
            values,
            None,
            objects.secret_labels(pod.metadata.labels or {}),
            self.start_id,
        )
        name = secret.metadata.name
        timeout = self.k8s_api_request_retry_timeout
        await exponential_backoff(
            partial(self._secret_is_gone, name), f"Could not delete secret {name}", timeout=timeout
        )
        await exponential_backoff(
            partial(self._secret_is_created, secret),
            f"Could not create secret {name}",
            timeout=timeout,
        )

    async def _secret_is_gone(self, name: str) -> bool:
        """Delete the Secret and check that it is gone; False: try again (backoff)."""
        api = kubespawner_api.core_api(self)
        try:
            await asyncio.wait_for(
                api.delete_namespaced_secret(name=name, namespace=self.namespace),
                self.k8s_api_request_timeout,
            )
            await asyncio.wait_for(
                api.read_namespaced_secret(name=name, namespace=self.namespace),
                self.k8s_api_request_timeout,
            )
        except TimeoutError:
            return False
        except ApiException as error:
            if error.status == 404:
                return True
            self.log.warning("Deleting secret %s failed, trying again: %s", name, error)
        return False  # still there, being deleted

    async def _secret_is_created(self, secret) -> bool:
        """Create the Secret; False on a timeout (backoff tries again), errors raise."""
        try:
            await asyncio.wait_for(
                kubespawner_api.core_api(self).create_namespaced_secret(self.namespace, secret),
                self.k8s_api_request_timeout,
            )
        except TimeoutError:
            return False
        return True

    async def adopt_server_secret(self, pod: dict) -> None:
        """Make the pod the Secret's owner: Kubernetes deletes the Secret with the pod."""
        owner = make_owner_reference(self.pod_name, pod["metadata"]["uid"])
        await kubespawner_api.core_api(self).patch_namespaced_secret(
            name=self.server_secret_name,
            namespace=self.namespace,
            body=objects.owner_reference_patch(owner),
        )

    # --- hooks ----------------------------------------------------------------------------

    async def start(self):
        self.check_name()
        # New at every start: the preview gateway ends sign-ins to a previous start.
        self.start_id = secrets.token_hex(8)
        self.preview_host = ""
        self.relay_checks_start = bool(self.preview_relay_port)
        self.relay_picks_port = self.relay_checks_start
        self._starting = True
        try:
            url = await super().start()
        finally:
            self._starting = False
        self.preview_host = podstatus.pod_ip(kubespawner_api.reflected_pod(self)) or ""
        return url

    @property
    def preview_route(self) -> PreviewRoute | None:
        """Where the preview gateway reaches this start's app: through the pod's relay.
        None before the pod has an IP, or with no relay."""
        if not (self.preview_host and self.preview_relay_port):
            return None
        return PreviewRoute(
            start_id=self.start_id,
            app_port=self.preview_port,
            relay_port=self.preview_relay_port,
            host=self.preview_host,
            relay_checks_start=self.relay_checks_start,
            reserved_ports=(self.port,),
            relay_picks_port=self.relay_picks_port,
        )

    def get_state(self):
        state = super().get_state()
        if self.start_id:  # the start its pod and Secret are annotated with
            state["start_id"] = self.start_id
        route = self.preview_route
        if route:  # read by the preview gateway (hub API, admin:server_state)
            state.update(route.to_state())
        return state

    def load_state(self, state):
        super().load_state(state)
        self.start_id = state.get("start_id", "")
        route = PreviewRoute.from_state(state)
        self.preview_host = route.host if route else ""
        self.relay_checks_start = bool(route and route.relay_checks_start)
        self.relay_picks_port = bool(route and route.relay_picks_port)

    def clear_state(self):
        super().clear_state()
        self.start_id = ""
        self.preview_host = ""
        self.relay_checks_start = False
        self.relay_picks_port = False

    async def get_pod_manifest(self):
        pod = await super().get_pod_manifest()
        pod = objects.add_restore_and_preview(
            pod, self.restore_command, self.workspace_dir, self.preview_port
        )
        if self.start_id:
            pod = objects.annotate_start(pod, self.start_id)
        if self.preview_relay_port:
            pod = objects.add_preview_relay(
                pod,
                command=self.preview_relay_command,
                relay_port=self.preview_relay_port,
                app_port=self.preview_port,
                resources=self.preview_relay_resources,
                image=self.preview_relay_image,
                image_pull_policy=self.preview_relay_image_pull_policy,
                start_id=self.start_id,
                reserved_ports=(self.port,),
            )
        return pod

    async def stop(self, now=False):
        await super().stop(now=now)
        if self._starting:
            # KubeSpawner found a pod of this name (an orphan of a hub killed mid-spawn)
            # and stops it before it creates this start's pod: the Secret is this
            # start's, made for that pod, and must stay.
            return
        # The owner reference removes it too; deleting now keeps no keys around meanwhile.
        try:
            await kubespawner_api.core_api(self).delete_namespaced_secret(
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
                    raw = kubespawner_api.raw_event(event)
                    message = podstatus.describe_event(raw) if raw else event.get("message")
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
        last = None
        while True:
            await asyncio.sleep(RESTORE_POLL_SECONDS)
            pod = kubespawner_api.reflected_pod(self)
            state = podstatus.container_state(pod, objects.RESTORE_CONTAINER)
            if state not in ("running", "terminated"):
                continue
            try:
                log_text = await kubespawner_api.core_api(self).read_namespaced_pod_log(
                    name=self.pod_name,
                    namespace=self.namespace,
                    container=objects.RESTORE_CONTAINER,
                    tail_lines=20,
                )
            except ApiException as error:
                self.log.debug("No restore log for %s yet: %s", self.server_label, error)
                continue
            record = last_record(log_text)
            if record and record != last:
                last = record
                await queue.put(restore_progress_event(record, 50, 80))
            if state == "terminated":
                return

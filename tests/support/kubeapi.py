"""A small Kubernetes API server on loopback, for KubeSpawner's start and stop without a cluster.

It speaks the parts of the core/v1 REST API that KubeSpawner and CodePilotSpawner use,
over real HTTP, to the real ``kubernetes_asyncio`` client: pods and events (list and
watch, as the reflectors do; a test adds events), secrets (create, read, patch, delete)
and pod logs. It plays the kubelet in one respect: a pod whose containers read a Secret
that does not exist when the pod is created gets ``CreateContainerConfigError`` and
never becomes ready, and the Secret a pod was started with is recorded. Every request is
logged in order.
"""

import asyncio
import contextlib
import copy
import itertools
import json
import uuid

from aiohttp import web

from .loopback import start_on_loopback
from .manifests import all_containers

POD_IP = "10.42.0.17"


class FakeKubeAPI:
    def __init__(self, pod_ip: str = POD_IP):
        self.pod_ip = pod_ip
        self.pods: dict[tuple[str, str], dict] = {}
        self.secrets: dict[tuple[str, str], dict] = {}
        self.events: dict[tuple[str, str], dict] = {}
        self.requests: list[tuple[str, str, str]] = []  # (verb, kind, name)
        self.secret_seen_by_pod: dict[str, dict | None] = {}  # pod name -> Secret at creation
        self._versions = itertools.count(1)
        self._watchers: dict[str, set[asyncio.Queue]] = {"pods": set(), "events": set()}
        # Every change, by kind, with its resource version: a watch from a version gets
        # the changes after it first, as from a real API server (a reflector lists, then
        # watches from the list's version; what changed between is not lost).
        self._history: dict[str, list[tuple[int, dict]]] = {"pods": [], "events": []}
        self._runner: web.AppRunner | None = None
        self.url = ""

    # --- life ---------------------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application()
        base = "/api/v1/namespaces/{ns}"
        app.add_routes(
            [
                web.get(base + "/pods", self.list_pods),
                web.post(base + "/pods", self.create_pod),
                web.delete(base + "/pods/{name}", self.delete_pod),
                web.get(base + "/pods/{name}", self.read_pod),
                web.get(base + "/pods/{name}/log", self.pod_log),
                web.get(base + "/events", self.list_events),
                web.post(base + "/secrets", self.create_secret),
                web.get(base + "/secrets/{name}", self.read_secret),
                web.patch(base + "/secrets/{name}", self.patch_secret),
                web.delete(base + "/secrets/{name}", self.delete_secret),
            ]
        )
        self._runner = web.AppRunner(app, access_log=None)
        port = await start_on_loopback(self._runner)
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        for queues in self._watchers.values():
            for queue in queues:
                queue.put_nowait(None)
        if self._runner is not None:
            await self._runner.cleanup()

    # --- helpers --------------------------------------------------------------------------

    def _version(self) -> str:
        return str(next(self._versions))

    def _log(self, verb, kind, name=""):
        self.requests.append((verb, kind, name))

    def _publish(self, kind: str, event_type: str, obj: dict) -> None:
        version = self._version()
        obj["metadata"]["resourceVersion"] = version
        event = {"type": event_type, "object": copy.deepcopy(obj)}
        self._history[kind].append((int(version), event))
        for queue in self._watchers[kind]:
            queue.put_nowait(event)

    @staticmethod
    def _not_found(kind, name):
        body = {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404}
        body["message"] = f'{kind} "{name}" not found'
        return web.json_response(body, status=404)

    async def _posted(self, request, kind: str, store: dict) -> tuple[str, str, dict, bool]:
        """A create request's namespace, name and object, and whether that name is taken."""
        namespace = request.match_info["ns"]
        obj = await request.json()
        name = obj["metadata"]["name"]
        self._log("create", kind, name)
        return namespace, name, obj, (namespace, name) in store

    def _removed(self, request, kind: str, store: dict) -> tuple[str, dict | None]:
        """A delete request's name and the object it removed (None when there was none)."""
        key = (request.match_info["ns"], request.match_info["name"])
        self._log("delete", kind, key[1])
        return key[1], store.pop(key, None)

    @staticmethod
    def _already_exists():
        return web.json_response({"kind": "Status", "code": 409}, status=409)

    async def _list_or_watch(self, request, kind: str, items: list[dict]):
        if request.query.get("watch") in ("true", "1", "True"):
            queue: asyncio.Queue = asyncio.Queue()
            since = int(request.query.get("resourceVersion") or 0)
            for version, event in self._history[kind]:
                if version > since:
                    queue.put_nowait(event)
            self._watchers[kind].add(queue)
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            await response.prepare(request)
            timeout = float(request.query.get("timeoutSeconds", 30))
            try:
                while True:
                    try:
                        event = await asyncio.wait_for(queue.get(), timeout)
                    except TimeoutError:
                        break
                    if event is None:
                        break
                    await response.write(json.dumps(event).encode() + b"\n")
            except (ConnectionResetError, asyncio.CancelledError):
                pass
            finally:
                self._watchers[kind].discard(queue)
            return response
        self._log("list", kind)
        return web.json_response(
            {
                "kind": "List",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": self._version()},
                "items": items,
            }
        )

    # --- pods -----------------------------------------------------------------------------

    async def list_pods(self, request):
        namespace = request.match_info["ns"]
        items = [p for (ns, _), p in self.pods.items() if ns == namespace]
        return await self._list_or_watch(request, "pods", items)

    async def read_pod(self, request):
        key = (request.match_info["ns"], request.match_info["name"])
        if key not in self.pods:
            return self._not_found("pods", key[1])
        return web.json_response(self.pods[key])

    def secret_names_read_by(self, pod: dict) -> set[str]:
        names = set()
        for container in all_containers(pod["spec"]):
            for variable in container.get("env", []):
                ref = (variable.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    names.add(ref["name"])
        return names

    async def create_pod(self, request):
        namespace, name, pod, exists = await self._posted(request, "pods", self.pods)
        if exists:
            return self._already_exists()
        # What the kubelet would read when it creates the containers.
        missing = []
        for secret_name in self.secret_names_read_by(pod):
            secret = self.secrets.get((namespace, secret_name))
            self.secret_seen_by_pod[name] = copy.deepcopy(secret)
            if secret is None:
                missing.append(secret_name)
        if missing:
            waiting = {
                "reason": "CreateContainerConfigError",
                "message": f'secret "{missing[0]}" not found',
            }
            statuses = container_statuses(pod, ready=False, state={"waiting": waiting})
            status = {"phase": "Pending", "podIP": self.pod_ip, "containerStatuses": statuses}
        else:
            running = {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
            statuses = container_statuses(pod, ready=True, state=running)
            status = {"phase": "Running", "podIP": self.pod_ip, "containerStatuses": statuses}
        pod["metadata"].update(namespace=namespace, uid=str(uuid.uuid4()))
        pod["status"] = status
        self.pods[(namespace, name)] = pod
        self._publish("pods", "ADDED", pod)  # gives it its resourceVersion
        return web.json_response(pod, status=201)

    async def delete_pod(self, request):
        name, pod = self._removed(request, "pods", self.pods)
        if pod is None:
            return self._not_found("pods", name)
        # Garbage collection: what the pod owned goes with it.
        for secret_key, secret in list(self.secrets.items()):
            owners = secret["metadata"].get("ownerReferences") or []
            if any(owner.get("uid") == pod["metadata"]["uid"] for owner in owners):
                del self.secrets[secret_key]
        self._publish("pods", "DELETED", pod)
        return web.json_response(pod)

    async def pod_log(self, request):
        return web.Response(text="")

    async def list_events(self, request):
        namespace = request.match_info["ns"]
        items = [e for (ns, _), e in self.events.items() if ns == namespace]
        return await self._list_or_watch(request, "events", items)

    def add_event(self, namespace: str, event: dict) -> dict:
        """Record ``event`` (a core/v1 Event, as the API returns one) and tell watchers."""
        event = copy.deepcopy(event)
        event["metadata"]["namespace"] = namespace
        self.events[(namespace, event["metadata"]["name"])] = event
        self._publish("events", "ADDED", event)
        return event

    # --- secrets --------------------------------------------------------------------------

    async def create_secret(self, request):
        namespace, name, secret, exists = await self._posted(request, "secrets", self.secrets)
        if exists:
            return self._already_exists()
        secret["metadata"].update(namespace=namespace, uid=str(uuid.uuid4()))
        self.secrets[(namespace, name)] = secret
        return web.json_response(secret, status=201)

    async def read_secret(self, request):
        key = (request.match_info["ns"], request.match_info["name"])
        self._log("get", "secrets", key[1])
        if key not in self.secrets:
            return self._not_found("secrets", key[1])
        return web.json_response(self.secrets[key])

    async def patch_secret(self, request):
        key = (request.match_info["ns"], request.match_info["name"])
        self._log("patch", "secrets", key[1])
        if key not in self.secrets:
            return self._not_found("secrets", key[1])
        patch = await request.json()
        merge_patch(self.secrets[key], patch)
        return web.json_response(self.secrets[key])

    async def delete_secret(self, request):
        name, secret = self._removed(request, "secrets", self.secrets)
        if secret is None:
            return self._not_found("secrets", name)
        return web.json_response(secret)


def container_statuses(pod: dict, ready: bool, state: dict) -> list[dict]:
    return [
        {
            "name": container["name"],
            "image": container["image"],
            "imageID": "",
            "restartCount": 0,
            "ready": ready,
            "state": state,
        }
        for container in pod["spec"]["containers"]
    ]


def merge_patch(target: dict, patch: dict) -> None:
    """RFC 7386 JSON merge patch (lists are replaced, as for ownerReferences)."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge_patch(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


@contextlib.asynccontextmanager
async def running_fake_api(**kwargs):
    api = FakeKubeAPI(**kwargs)
    await api.start()
    try:
        yield api
    finally:
        await api.stop()

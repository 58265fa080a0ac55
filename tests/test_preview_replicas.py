"""Gateway replicas against a real hub: share levels kept in a hub group
(``HubGroupShares``), and sealed sessions as an attacker would use them.

The hub registers a service with the gateway's Kubernetes role (``external_service``: its
scopes, with ``groups!group=codepilot-preview-shares``, and the empty group), so the token
the test uses holds exactly the gateway's scopes there; the gateway's own code talks to
it.
"""

import asyncio
import logging
import os
import time

import aiohttp
import pytest
from aiohttp import web
from jupyterhub.services.auth import HubAuth

from codepilot_spawner.services.preview import hubservice
from codepilot_spawner.services.preview.access import SHARE_LEVELS
from codepilot_spawner.services.preview.hosts import preview_label
from codepilot_spawner.services.preview.servers import (
    PreviewRoute,
    PreviewTarget,
)
from codepilot_spawner.services.preview.sessions import (
    HubGroupShares,
    ShareBook,
)
from codepilot_spawner.services.preview.tokens import sign
from tests.support.hubtools import start_hub
from tests.support.previewreplica import gateway_replica
from tests.test_preview_units import serving

pytestmark = pytest.mark.integration

OTHER_GROUP = "class-7b"


REPLICA_SERVICE = "codepilot-preview-replica"


def hub_config_as_kubernetes(gateway_token: str) -> str:
    """An extra hub config: beside the one-machine hub's own gateway, a service holding
    the role ``jupyterhub_config.py`` gives the gateway on Kubernetes (its scopes, from
    the same function), the empty shares group, and a class group."""
    return f"""
from codepilot_spawner.services.preview import hubservice as preview

gateway = preview.external_service(
    "http://127.0.0.1:9", {gateway_token!r}, "http://previews.localhost:9/"
)
gateway_role = gateway.roles[0]
c.JupyterHub.services.append({{**gateway.entry, "name": {REPLICA_SERVICE!r}}})
c.JupyterHub.load_roles.append(
    {{**gateway_role, "name": {REPLICA_SERVICE!r}, "services": [{REPLICA_SERVICE!r}]}}
)
c.JupyterHub.load_groups.update({{
    preview.SHARES_GROUP: {{"users": []}},
    {OTHER_GROUP!r}: {{"users": []}},
}})
"""


@pytest.fixture(scope="module")
def hub_and_token(tmp_path_factory):
    token = os.urandom(16).hex()
    extra = tmp_path_factory.mktemp("hubconfig") / "gateway_as_kubernetes.py"
    extra.write_text(hub_config_as_kubernetes(token))
    hub = start_hub(env={"CODEPILOT_HUB_EXTRA_CONFIG": str(extra)}, timeout=90)
    yield hub, token
    hub.stop()


def replica(hub, token) -> ShareBook:
    """A gateway replica's share book, as ``PreviewGatewayApp`` builds it."""
    store = HubGroupShares(
        f"{hub.url}/hub/api", token, hubservice.SHARES_GROUP, logging.getLogger("test")
    )
    return ShareBook(store, SHARE_LEVELS)


def target(user: str, start: str = "1") -> PreviewTarget:
    return PreviewTarget(user=user, server="", label=f"{user}-p", route=PreviewRoute(start, 3000))


def test_the_gateway_token_holds_exactly_its_kubernetes_scopes(hub_and_token):
    hub, token = hub_and_token
    reply = hub.api("GET", "/", token=token)
    assert reply.status_code == 200
    me = hub.api("GET", "/user", token=token).json()
    assert me["kind"] == "service" and me["name"] == REPLICA_SERVICE
    expected = {*hubservice.GATEWAY_SCOPES, *hubservice.SHARES_GROUP_SCOPES}
    assert expected <= set(me["scopes"]), me["scopes"]
    assert not any(s == "groups" or s.startswith("admin:groups") for s in me["scopes"])


def test_the_gateway_token_cannot_change_any_other_group(hub_and_token):
    hub, token = hub_and_token
    shares_group = hubservice.SHARES_GROUP
    # Its own group's properties: allowed (what HubGroupShares writes).
    reply = hub.api("GET", f"/groups/{shares_group}", token=token)
    assert reply.status_code == 200, reply.text
    others = [
        ("PUT", f"/groups/{OTHER_GROUP}/properties", {"json": {"shares": {}}}),
        ("POST", f"/groups/{OTHER_GROUP}/users", {"json": {"users": ["mallory"]}}),
        ("DELETE", f"/groups/{OTHER_GROUP}", {}),
        ("POST", "/groups/mallory-made", {"json": {"users": []}}),
        # Its own group's members are not its to change either: the group gives no one
        # any access, and must stay so.
    ]
    for method, path, kwargs in others:
        reply = hub.api(method, path, token=token, **kwargs)
        # Refused: 403 without the scope at all, 404 "No access to resources" where the
        # scope is there but filtered to another group (JupyterHub hides which it is).
        assert reply.status_code in (403, 404), (method, path, reply.status_code, reply.text)
        assert reply.json()["message"].startswith(("Action is not authorized", "No access"))


def test_replicas_setting_levels_at_the_same_moment_keep_every_change(hub_and_token):
    hub, token = hub_and_token
    replicas = [replica(hub, token) for _ in range(4)]
    previews = [target(f"concurrent{i}") for i in range(len(replicas))]

    async def all_at_once():
        await asyncio.gather(*(r.refresh() for r in replicas))
        await asyncio.gather(
            *(r.set_level(p, "authenticated") for r, p in zip(replicas, previews, strict=True))
        )
        reader = replica(hub, token)
        await reader.refresh()
        return [reader.level(p) for p in previews]

    assert asyncio.run(all_at_once()) == ["authenticated"] * len(previews)


def test_a_change_another_replica_wrote_over_comes_back_at_the_next_poll(hub_and_token):
    hub, token = hub_and_token
    setter, stale = replica(hub, token), replica(hub, token)
    bea = target("bea")

    async def overwritten_then_polled():
        await stale.refresh()  # what it read before the change
        await setter.set_level(bea, "public")
        snapshot = dict(stale.levels)
        # A replica that read before the change writes after it: the change is gone.
        await stale.file.write(lambda: snapshot)
        reader = replica(hub, token)
        await reader.refresh()
        lost = reader.level(bea)
        await setter.refresh()  # the poll every gateway makes (follow_hub)
        await reader.refresh()
        return lost, reader.level(bea)

    lost, after_poll = asyncio.run(overwritten_then_polled())
    assert lost == "owner"
    assert after_poll == "public"


def gateway_replica_of(hub, gateway_token, key, targets, recheck_interval):
    """A replica asking the real hub about viewers' tokens with the gateway's token."""
    api_url = f"{hub.url}/hub/api"
    return gateway_replica(
        key,
        targets,
        hub_api_url=api_url,
        api_token=gateway_token,
        hub_auth=HubAuth(api_url=api_url, api_token=gateway_token),
        recheck_interval=recheck_interval,
    )


def test_a_sealed_session_ends_with_its_token_at_every_replica_and_opens_no_other_preview(
    hub_and_token,
):
    hub, gateway_token = hub_and_token
    assert hub.api("POST", "/users/vera").status_code in (201, 409)
    issued = hub.api("POST", "/users/vera/tokens", json={"note": "preview sign-in"}).json()
    recheck = 1.0

    async def attempt():
        async def app(request):  # the student's app: shows what reached it
            return web.Response(text=request.headers.get("Cookie", ""))

        app_runner, app_port = await serving(app)
        veras = PreviewTarget("vera", "", preview_label("vera"), PreviewRoute("1", app_port))
        other = PreviewTarget("otto", "", preview_label("otto"), PreviewRoute("1", app_port))
        key = os.urandom(32)
        gateways = [
            gateway_replica_of(hub, gateway_token, key, [veras, other], recheck) for _ in range(2)
        ]
        runners, ports = [], []
        for gateway in gateways:
            runner, port = await serving(gateway.handle)
            runners.append(runner)
            ports.append(port)
        # Signed in at replica A, as its hub-origin sign-in and sign-in page do.
        sid = await gateways[0].sessions.open(
            "vera", issued["token"], ["access:servers!user=vera"], veras
        )
        claims = {"sid": sid, "label": veras.label, "start": veras.start, "exp": time.time() + 60}
        cookie = f"codepilot_preview_session={sign(key, 'session', claims)}"

        async def fetch(port, target):
            async with aiohttp.ClientSession() as browser:
                reply = await browser.get(
                    f"http://127.0.0.1:{port}/page",
                    headers={
                        "Host": f"{target.label}.preview.localhost:{port}",
                        "Sec-Fetch-Site": "same-origin",
                        "Cookie": f"theme=dark; {cookie}",
                    },
                    allow_redirects=False,
                )
                return reply.status, await reply.text()

        try:
            seen = {"before": await fetch(ports[0], veras)}
            seen["other preview"] = await fetch(ports[1], other)
            hub.api("DELETE", f"/users/vera/tokens/{issued['id']}").raise_for_status()
            await asyncio.sleep(recheck + 0.2)
            seen["replica A, past recheck"] = await fetch(ports[0], veras)
            seen["replica B, first sight"] = await fetch(ports[1], veras)
            return seen, len(cookie)
        finally:
            for gateway in gateways:
                await gateway.close()
            for runner in [*runners, app_runner]:
                await runner.cleanup()

    seen, cookie_size = asyncio.run(attempt())
    # The app gets its own cookie, never the viewer's session.
    assert seen["before"] == (200, "theme=dark"), seen
    # A session for one preview opens no other, at any replica.
    assert seen["other preview"][0] == 401, seen
    # Once the token is revoked, no replica lets the session through past recheck_interval.
    assert seen["replica A, past recheck"][0] == 401, seen
    assert seen["replica B, first sight"][0] == 401, seen
    # Browsers keep cookies up to 4096 bytes (name and value).
    assert cookie_size < 4096, cookie_size


def test_a_level_set_by_one_replica_is_read_by_another_and_outlives_a_hub_restart(
    hub_and_token,
):
    hub, token = hub_and_token
    first, second = replica(hub, token), replica(hub, token)
    ada = target("ada")

    async def set_then_read():
        await first.refresh()
        await first.set_level(ada, "public")
        await second.refresh()
        return second.level(ada)

    assert asyncio.run(set_then_read()) == "public"
    # Kept in the group's properties, in the hub's database.
    group = hub.api("GET", f"/groups/{hubservice.SHARES_GROUP}", token=token).json()
    assert group["properties"]["shares"]

    # The hub starts again with the same config (load_groups names the group again).
    hub.stop()
    hub.__dict__.update(start_hub(data_dir=hub.data_dir, env=hub.env, timeout=90).__dict__)
    after_restart = replica(hub, token)
    asyncio.run(after_restart.refresh())
    assert after_restart.level(ada) == "public"

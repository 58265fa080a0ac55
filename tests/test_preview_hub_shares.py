"""Share levels kept in a hub group (``HubGroupShares``), against a real hub.

The hub registers a service with the gateway's Kubernetes role (``external_service``: its
scopes, with ``groups!group=codepilot-preview-shares``, and the empty group), so the token
the test uses holds exactly the gateway's scopes there; the gateway's own code talks to
it.
"""

import asyncio
import logging
import os

import pytest

from codepilot_spawner.services.preview import hubservice
from codepilot_spawner.services.preview.access import SHARE_LEVELS
from codepilot_spawner.services.preview.servers import PreviewRoute, PreviewTarget
from codepilot_spawner.services.preview.sessions import HubGroupShares, ShareBook
from tests.support.hubtools import start_hub

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

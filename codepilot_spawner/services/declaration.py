"""How a service of ours is declared to JupyterHub, in one shape for every service.

Each service's own module builds its ``HubService`` (``broker.hub_service``,
``preview.hubservice.hub_service``, ``classpage.hubservice.hub_service``,
``culler.hub_service``, the one-machine ``automation_service``); a hub config adds them
with ``add_to`` and hands JupyterHub the roles through ``merge_roles``.
"""

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class HubService:
    """One service: its entry in ``c.JupyterHub.services``, the roles it brings (its own,
    and what users gain to call it), and the scopes servers' tokens need to call it."""

    entry: dict
    roles: tuple[dict, ...] = ()
    server_token_scopes: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.entry["name"]

    def at(self, url: str) -> "HubService":
        """The same service, which the hub reaches at ``url``."""
        return replace(self, entry={**self.entry, "url": url})

    def add_to(self, services: list, roles: list) -> None:
        """Append it to the lists a hub config hands JupyterHub."""
        services.append(self.entry)
        roles.extend(self.roles)


def merge_roles(roles: list[dict]) -> list[dict]:
    """Roles with one name merged into one (JupyterHub refuses a name twice).

    Services each extend the ``user`` role with the scope that lets users call them;
    the merged role holds every scope once, in order.
    """
    merged: dict[str, dict] = {}
    for role in roles:
        name = role["name"]
        if name not in merged:
            merged[name] = {**role, "scopes": list(role.get("scopes", []))}
            continue
        into = merged[name]
        for key in ("scopes", "users", "groups", "services"):
            for item in role.get(key, []):
                into.setdefault(key, [])
                if item not in into[key]:
                    into[key].append(item)
    return list(merged.values())

"""The class page's rows: pure functions from the hub's user models and what servers say.

A row per server of a student (a student with no server gets one row for the default
server, stopped), with only what the page shows, so the JSON for 200 students stays
small and the browser updates rows in place.
"""

from urllib.parse import quote

from codepilot_contracts.run import RUN_STATES

from ..preview.access import SHARE_WORDS


def server_state(server: dict | None) -> str:
    """``running``, ``starting``, ``stopping`` or ``stopped`` from a hub server model."""
    if not server:
        return "stopped"
    pending = server.get("pending")
    if server.get("stopped") and not pending:
        return "stopped"
    if pending == "spawn":
        return "starting"
    if pending == "stop":
        return "stopping"
    return "running" if server.get("ready") else "starting"


TEXT_LIMIT = 300  # characters of a server's own words (an error) a row keeps


def _count(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _text(value) -> str:
    return value[:TEXT_LIMIT] if isinstance(value, str) else ""


def sync_summary(status) -> dict | None:
    """What the page shows of ``<server>/codepilot/api/sync``: mode, state, pending, error.

    A student's server answers this, and a student controls their server: any value of
    the wrong type or size is dropped, never a reason for the page to fail.
    """
    if not isinstance(status, dict):
        return None
    error = status.get("last_error") or status.get("watcher_error")
    if isinstance(error, dict):
        error = error.get("message")
    return {
        "storage": _text(status.get("storage")),
        "state": _text(status.get("state")),
        "pending": _count(status.get("pending")),
        "error": _text(error),
        "unreachable": status.get("unreachable") is True,
    }


UNKNOWN = "unknown"  # the run state of a server that did not answer
LABEL_LIMIT = 40  # characters of a run's label (``Crashed (signal 9)``) a row keeps


def run_summary(model) -> dict:
    """What the page shows of ``<server>/codepilot/api/run``: state, the status bar's
    label, the command. ``unknown`` for a server that did not answer or said nonsense
    (a student controls their server: nothing it says may break the page)."""
    state = model.get("state") if isinstance(model, dict) else None
    if state not in RUN_STATES:
        return {"state": UNKNOWN, "label": UNKNOWN.capitalize(), "command": ""}
    label = _text(model.get("label"))[:LABEL_LIMIT]
    return {
        "state": state,
        "label": label or state.capitalize(),
        "command": _text(model.get("command")),
    }


def server_url(user: str, server_name: str, server: dict | None) -> str:
    """Where a server is, as the hub says (with subdomains, on its user's host), else
    its path on the hub's host."""
    url = (server or {}).get("url")
    if isinstance(url, str) and url.endswith("/"):
        return url
    path = f"/user/{quote(user, safe='')}/"
    return path + f"{quote(server_name, safe='')}/" if server_name else path


def server_rows(
    user: dict, sync: dict, shares: dict, preview_url, runs: dict | None = None
) -> list[dict]:
    """The rows of one student: ``sync``, ``shares`` and ``runs`` (what each server's
    run API answered) are keyed by ``(user, server)``."""
    runs = runs or {}
    name = user["name"]
    servers = user.get("servers") or {}
    names = sorted(servers) or [""]
    rows = []
    for server_name in names:
        server = servers.get(server_name)
        state = server_state(server)
        key = (name, server_name)
        running = state == "running"
        url = server_url(name, server_name, server)
        rows.append(
            {
                "id": f"{name}/{server_name}",
                "user": name,
                "server": server_name,
                "state": state,
                "last_activity": (server or {}).get("last_activity") or user.get("last_activity"),
                "ide_url": url + "lab" if running else "",
                "preview_url": preview_url(name, server_name) if running else "",
                "share": shares.get(key, "") if running else "",
                "share_words": SHARE_WORDS.get(shares.get(key, ""), "") if running else "",
                "sync": sync_summary(sync.get(key)) if running else None,
                "run": run_summary(runs.get(key)) if running else None,
            }
        )
    return rows


def class_rows(
    users: list[dict], sync: dict, shares: dict, preview_url, runs: dict | None = None
) -> list[dict]:
    """Every student's rows, by user name then server name."""
    rows = []
    for user in sorted(users, key=lambda user: user["name"]):
        rows.extend(server_rows(user, sync, shares, preview_url, runs))
    return rows

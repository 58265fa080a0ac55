"""What the hub side uses of JupyterHub that it does not document as API.

Its database's ``spawners`` table, read by ``make down`` while no hub runs; how
``LocalProcessSpawner`` keeps, polls and stops a server by pid, which the one-machine
spawner relies on for servers it forks itself; the setuid helper it exports; the hub's
settings a spawner's user carries; the hub's users and their groups as the classes
read and set them from the authenticator's hooks (a request handler's users, the
``groups`` of a user and of its database row). Each member was checked on jupyterhub
5.3.0 to 6.1.1 (pyproject: ``>=5.3,<7``).
"""

import contextlib
import json
import sqlite3
from pathlib import Path

# The table of JupyterHub's ORM that holds one row per server, and its JSON column with
# what ``Spawner.get_state`` returned.
SPAWNERS_TABLE = "spawners"
STATE_COLUMN = "state"
# The key of LocalProcessSpawner's state that holds the server's pid.
PID_STATE_KEY = "pid"


def stored_spawner_states(database: Path) -> list[dict]:
    """The non-empty spawner states a hub's SQLite database keeps, read-only; none when it
    has no table of spawners yet (the launcher makes the file empty; a hub configured
    with another database, such as PostgreSQL, never fills it).

    Checked on jupyterhub 5.3.0-6.1.1 (``orm.Spawner``: table ``spawners``, JSON column
    ``state``). If it drifts, ``make down`` finds no server and leaves them all running.
    """
    if not database.exists():
        return []
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        rows = connection.execute(f"SELECT {STATE_COLUMN} FROM {SPAWNERS_TABLE}").fetchall()
    except sqlite3.OperationalError:  # no such table
        return []
    finally:
        connection.close()
    states = []
    for (raw,) in rows:
        with contextlib.suppress(TypeError, ValueError):
            state = json.loads(raw) if isinstance(raw, str | bytes) else raw
            if isinstance(state, dict) and state:
                states.append(state)
    return states


def state_pid(state: dict) -> int | None:
    """The pid of a local server's process in its stored spawner state, if any.

    Checked on jupyterhub 5.3.0-6.1.1 (``LocalProcessSpawner.get_state``). If it drifts,
    ``make down`` ends no server's main process and takes a server for one of the hub's
    own processes.
    """
    return state.get(PID_STATE_KEY)


def adopt_process(spawner, pid: int) -> None:
    """Have a ``LocalProcessSpawner`` track ``pid``, a process it did not start itself,
    as it tracks a server after a hub restart: polled with signal 0, stopped with SIGINT,
    SIGTERM then SIGKILL, kept in its state.

    Checked on jupyterhub 5.3.0-6.1.1 (``poll`` and ``stop`` use ``pid`` when ``proc``,
    the Popen, is None). If it drifts, servers forked by the fork server are taken for
    stopped at once, or are never stopped.
    """
    spawner.pid = pid
    spawner.proc = None


def adopted_pid(spawner) -> int:
    """The pid a ``LocalProcessSpawner`` polls by signal (a process adopted, or read back
    from its state after a hub restart); 0 when it has none or holds the Popen itself.

    Checked on jupyterhub 5.3.0-6.1.1 (see ``adopt_process``).
    """
    return (spawner.pid or 0) if spawner.proc is None else 0


def forget_process(spawner) -> None:
    """Make a ``LocalProcessSpawner``'s next poll report its server gone (status 0) and
    clear its state, without signalling the pid it had (another process's by now).

    Checked on jupyterhub 5.3.0-6.1.1 (``poll`` with no Popen and pid 0). If it drifts,
    a restarted hub takes an unrelated process that reuses a server's old pid for the
    server, or signals it when stopping.
    """
    spawner.pid = 0


def switch_user(name: str):
    """A ``preexec_fn`` that makes the child Unix user ``name`` (groups, gid, uid), staying
    in the working directory it was given.

    Checked on jupyterhub 5.3.0-6.1.1 (``jupyterhub.spawner.set_user_setuid``, keyword
    ``chdir``). If it drifts, isolated servers cannot start, or start in their Unix
    account's home instead of their workspace.
    """
    from jupyterhub.spawner import set_user_setuid  # here: `make down` runs without it

    return set_user_setuid(name, chdir=False)


def named_server_limit(user):
    """The hub's ``JupyterHub.named_server_limit_per_user`` (a number or a callable), as
    the settings of a spawner's ``user`` carry it; 0 when they do not.

    Checked on jupyterhub 5.3.0-6.1.1 (``User.settings``, the hub's tornado settings).
    If it drifts, servers learn no project limit and the project switcher does not warn
    of names over it (the hub still enforces it).
    """
    return getattr(user, "settings", {}).get("named_server_limit_per_user", 0)


def find_hub_user(handler, name: str):
    """The hub's ``User`` named ``name``, or None when the hub has no such user, as the
    request ``handler`` an authenticator's hooks get finds it.

    Checked on jupyterhub 5.3.0-6.1.1 (``BaseHandler.find_user``). If it drifts, a
    teacher the admin moved into the teachers group logs in with the class password, and
    a mistyped name becomes a new, empty account.
    """
    return handler.find_user(name)


def hub_user(handler, name: str):
    """The hub's ``User`` named ``name``, created with its default roles when the hub
    does not know it yet (at a first login, before JupyterHub would create it).

    Checked on jupyterhub 5.3.0-6.1.1 (``BaseHandler.user_from_username``). If it
    drifts, whoever logs in for the first time joins no class group.
    """
    return handler.user_from_username(name)


def _user_row(user):
    """The database row of a hub user: a ``User`` holds it, an authenticator's
    ``add_user`` may get the row itself (at hub start)."""
    return getattr(user, "orm_user", user)


def group_names(user) -> set[str]:
    """The names of the hub groups ``user`` (a ``User`` or its database row) is in.

    Checked on jupyterhub 5.3.0-6.1.1 (``orm.User.groups``, which ``User`` hands on). If
    it drifts, teachers the admin moved are moved back at their next login.
    """
    return {group.name for group in _user_row(user).groups}


def group_properties(user) -> list[dict]:
    """The ``properties`` of each hub group ``user`` (a ``User`` or its database row) is
    in, in the order the hub keeps them.

    Checked on jupyterhub 5.3.0-6.1.1 (``orm.Group.properties``, a JSON column). If it
    drifts, a class's new projects no longer start from the starter its teacher chose.
    """
    return [dict(group.properties or {}) for group in _user_row(user).groups]


def place_in_group(user, group: str, out_of=()) -> bool:
    """Put ``user`` (a ``User`` or its database row) in the hub group ``group`` and out of
    the other groups named in ``out_of``, creating the groups the hub lacks, and commit;
    False, changing nothing, for a row that is in no database session yet.

    Checked on jupyterhub 5.3.0-6.1.1 (``orm.Group.find``, ``orm.Group(name=)``,
    ``orm.User.groups``, the row's SQLAlchemy session). If it drifts, nobody joins a
    class: teachers find no students.
    """
    from jupyterhub import orm
    from sqlalchemy.orm import object_session

    row = _user_row(user)
    db = object_session(row)
    if db is None:
        return False
    for name in dict.fromkeys((*out_of, group)):
        found = orm.Group.find(db, name)
        if found is None:
            found = orm.Group(name=name)
            db.add(found)
        if name == group and found not in row.groups:
            row.groups.append(found)
        elif name != group and found in row.groups:
            row.groups.remove(found)
    db.commit()
    return True

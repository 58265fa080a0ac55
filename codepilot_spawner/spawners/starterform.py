"""The starter form: the spawn form that offers starters, and the check of a user's choice.

Offered: the configured starters, then a class's own folders under
``<data dir>/templates/`` (``templates`` is the folder's stored name; read at every form,
so a folder an admin copies there shows up without a restart). A teacher's default for
the class (a group property) is preselected, and used when a REST start names no starter.
"""

import html
from pathlib import Path

from tornado import web

from codepilot_contracts.starters import STORED_FOLDER, folder_starter_names

from ..classroom.groups import default_starter

STARTER_OPTION = "starter"
# The option's old name: a REST start that sends {"template": "flask"} still gets flask.
OLD_STARTER_OPTION = "template"


def starter_form(starters: list[str], chosen: str = "") -> str:
    """The spawn page's form: a list of starters, used when the workspace is new."""
    options = ['<option value="">Empty workspace</option>']
    for name in starters:
        selected = " selected" if name == chosen else ""
        options.append(
            f'<option value="{html.escape(name)}"{selected}>{html.escape(name)}</option>'
        )
    return (
        '<div class="form-group">'
        '<label for="codepilot-starter">Starter</label>'
        f'<select class="form-control" id="codepilot-starter" name="{STARTER_OPTION}">'
        + "".join(options)
        + "</select>"
        '<p class="form-text text-muted">Copied into a new workspace only; an existing '
        "workspace keeps its files.</p>"
        "</div>"
    )


def class_starters_dir(data_dir) -> Path:
    """``<data dir>/templates``: where an admin copies the class's own starters."""
    return Path(data_dir) / STORED_FOLDER


def offered_starters(configured: list[str], data_dir) -> list[str]:
    """The configured starters, then the class's own folders not named like one."""
    folders = folder_starter_names(class_starters_dir(data_dir))
    return [*configured, *(name for name in folders if name not in configured)]


def spawner_starters(spawner) -> tuple[list[str], str]:
    """(starters offered to this spawner, its class's default when it is one of them)."""
    offered = offered_starters(list(spawner.starters), spawner.data_dir)
    default = default_starter(spawner.user)
    return offered, default if default in offered else ""


def chosen_starter(user_options: dict, starters: list[str], default: str = "") -> str:
    """The starter a user asked for (form or REST body), or "" for none.

    Without a ``starter`` key at all (a bare REST start), the class's ``default``.
    Raises a 400 that names the choices when the value is not one of them.
    """
    key = STARTER_OPTION if STARTER_OPTION in user_options else OLD_STARTER_OPTION
    if key not in user_options:
        return default
    value = user_options.get(key, "")
    if isinstance(value, list) and len(value) == 1:  # raw form data
        value = value[0]
    if value in ("", None):
        return ""
    if not isinstance(value, str) or value not in starters:
        raise web.HTTPError(400, f"Unknown starter {value!r}; choose one of: {', '.join(starters)}")
    return value

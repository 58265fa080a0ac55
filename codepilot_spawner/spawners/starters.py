"""Starter templates: the spawn form that offers them and the check of a user's choice.

Offered: the configured starters, then a class's own folders under
``<data dir>/templates/`` (read at every form, so a folder an admin copies there shows
up without a restart). A teacher's default for the class (a group property) is
preselected, and used when a REST start names no template.
"""

import html
from pathlib import Path

from tornado import web

from codepilot_contracts.starters import folder_starter_names

from ..classroom.groups import default_starter

CLASS_STARTERS = "templates"  # <data dir>/templates/<name>/


def template_form(templates: list[str], chosen: str = "") -> str:
    """The spawn page's form: a list of starters, used when the workspace is new."""
    options = ['<option value="">Empty workspace</option>']
    for name in templates:
        selected = " selected" if name == chosen else ""
        options.append(
            f'<option value="{html.escape(name)}"{selected}>{html.escape(name)}</option>'
        )
    return (
        '<div class="form-group">'
        '<label for="codepilot-template">Starter template</label>'
        '<select class="form-control" id="codepilot-template" name="template">'
        + "".join(options)
        + "</select>"
        '<p class="form-text text-muted">Copied into a new workspace only; an existing '
        "workspace keeps its files.</p>"
        "</div>"
    )


def class_starters_dir(data_dir) -> Path:
    return Path(data_dir) / CLASS_STARTERS


def offered_templates(configured: list[str], data_dir) -> list[str]:
    """The configured starters, then the class's own folders not named like one."""
    folders = folder_starter_names(class_starters_dir(data_dir))
    return [*configured, *(name for name in folders if name not in configured)]


def spawner_starters(spawner) -> tuple[list[str], str]:
    """(starters offered to this spawner, its class's default when it is one of them)."""
    offered = offered_templates(list(spawner.templates), spawner.data_dir)
    default = default_starter(spawner.user.groups)
    return offered, default if default in offered else ""


def chosen_template(user_options: dict, templates: list[str], default: str = "") -> str:
    """The template a user asked for (form or REST body), or "" for none.

    Without a ``template`` key at all (a bare REST start), the class's ``default``.
    Raises a 400 that names the choices when the value is not one of them.
    """
    if "template" not in user_options:
        return default
    value = user_options.get("template", "")
    if isinstance(value, list) and len(value) == 1:  # raw form data
        value = value[0]
    if value in ("", None):
        return ""
    if not isinstance(value, str) or value not in templates:
        raise web.HTTPError(
            400, f"Unknown template {value!r}; choose one of: {', '.join(templates)}"
        )
    return value

"""Starter templates: the spawn form that offers them and the check of a user's choice."""

import html

from tornado import web

STARTER_TEMPLATES = ["python", "flask", "node-express", "react-vite"]
# Names shown in spawn forms; a template not listed here shows its own name.
TEMPLATE_TITLES = {
    "python": "Python",
    "flask": "Flask web app",
    "node-express": "Node.js + Express",
    "react-vite": "React + Vite",
}


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


def chosen_template(user_options: dict, templates: list[str]) -> str:
    """The template a user asked for (form or REST body), or "" for none.

    Raises a 400 that names the choices when the value is not one of them.
    """
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

"""JupyterLab's Extension Manager in a workspace server: read-only.

JupyterLab's default manager (``pypi``) offers to pip-install extensions into the
server's own environment, which a student cannot write to (the machine's or the image's),
queries pypi.org when its panel opens, and builds an HTTP client for it in every server
at start (about 5 MB of each idle server's memory). The read-only manager lists what the
admin installed. An admin's ``c.LabApp.extension_manager`` wins.
"""

READ_ONLY = "readonly"


def use_read_only_extension_manager(serverapp) -> None:
    """Runs while extensions are linked: JupyterLab builds its manager when it loads."""
    for app in serverapp.extension_manager.extension_apps.get("jupyterlab", ()):
        if "extension_manager" not in app.config.get("LabApp", {}):
            app.extension_manager = READ_ONLY

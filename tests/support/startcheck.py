"""Run as ``python -P -m tests.support.startcheck <root> [--no-defer] [--preload]``: does
what a user server does at start (jupyter-server with every extension this environment
enables, Code Pilot's and JupyterLab's included, initialised; a file saved through the
contents manager, whose event jupyter_events validates against its schema), then prints
JSON: the extensions loaded (and JupyterLab's extension manager), the events emitted,
whether the deferred modules were still stand-ins after all that, and the answers of
jsonschema's ``iri`` format check, and the package metadata files (``*.dist-info``)
the start opened. With ``--preload`` it first imports what the fork server preloads, and
also prints what the start imported beyond that.
"""

import asyncio
import json
import logging
import sys

from server_extension.startup.deferred import DEFERRED, defer_unused_imports, is_deferred

IRI_SAMPLES = ("https://例え.jp/ä?q=1#x", "no scheme", "http://[::1", "urn:isbn:0451450523")


class Captured(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        self.records.append(record.msg)


class OpenedFiles:
    """Paths of package metadata that this process opens while ``recording``."""

    def __init__(self):
        self.recording = False
        self.metadata = []
        sys.addaudithook(self.hook)

    def hook(self, event, args):
        path = args[0] if self.recording and event == "open" else None
        if isinstance(path, str) and (".dist-info/" in path or ".egg-info/" in path):
            self.metadata.append(path)


async def save_a_file(app) -> None:
    saved = app.contents_manager.save({"type": "file", "format": "text", "content": "x"}, "a.txt")
    if asyncio.iscoroutine(saved):
        await saved


def main() -> None:
    root, defer = sys.argv[1], "--no-defer" not in sys.argv
    opened = OpenedFiles()
    if defer:
        defer_unused_imports()
    preloaded = None
    if "--preload" in sys.argv:
        from server_extension.startup.forkserver import preload

        preload_failed = preload()
        preloaded = set(sys.modules)
    from jupyter_server.serverapp import ServerApp

    app = ServerApp.instance()
    opened.recording = True
    app.initialize([f"--ServerApp.root_dir={root}", "--ServerApp.open_browser=False"])
    if hasattr(app, "language_server_manager"):
        # What jupyter-lsp runs in a thread once the server's loop starts.
        app.language_server_manager.initialize()
    opened.recording = False
    events = Captured()
    app.event_logger.register_handler(events)
    asyncio.run(save_a_file(app))
    deferred_after_start = {name: is_deferred(name) for name in DEFERRED}
    preload = None
    if preloaded is not None:
        preload = {"failed": preload_failed, "imported_after": sorted(set(sys.modules) - preloaded)}

    import jsonschema

    checker = jsonschema.Draft7Validator.FORMAT_CHECKER
    iri = [checker.conforms(sample, "iri") for sample in IRI_SAMPLES]
    print(
        json.dumps(
            {
                "extensions": sorted(
                    name
                    for name, apps in app.extension_manager.extension_apps.items()
                    if app.extension_manager.extensions[name].enabled and apps
                ),
                "events": [str(event) for event in events.records],
                "deferred_after_start": deferred_after_start,
                "iri": iri,
                "deferred_after_check": {name: is_deferred(name) for name in DEFERRED},
                "preload": preload,
                "metadata_files_read": len(opened.metadata),
                "extension_manager": [
                    lab.extension_manager
                    for lab in app.extension_manager.extension_apps.get("jupyterlab", ())
                ],
            }
        )
    )


if __name__ == "__main__":
    main()

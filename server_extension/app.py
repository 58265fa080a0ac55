"""The ``CodePilot`` extension app: settings, terminal environment and routes."""

from jupyter_server.extension.application import ExtensionApp
from jupyter_server.utils import url_path_join
from traitlets import Int

from .envconfig import EnvDefaultsMixin
from .preview import preview_handlers
from .terminals import WorkspaceTerminalManager, configure_terminals


class CodePilot(EnvDefaultsMixin, ExtensionApp):
    """Code Pilot workspace features for one user server.

    Every setting is ``c.CodePilot.<name>`` or the ``CODEPILOT_<NAME>`` environment
    variable, which is how the spawners pass them.
    """

    name = "codepilot"
    load_other_extensions = True

    preview_port = Int(
        3000,
        help="""Port on 127.0.0.1 where the user's web app listens (``npm run dev``,
        ``flask run``). ``<server url>/preview/`` proxies to it, and terminals get it as
        ``PORT`` and ``CODEPILOT_PREVIEW_PORT``. 3000 in a pod; the one-machine spawner
        picks a free port per server.""",
    ).tag(config=True)

    @property
    def preview_url(self) -> str:
        """Path of the preview that keeps its prefix, for dev servers that need a base path.

        ``<server url>/preview/`` strips its prefix, so apps that know nothing of paths work
        there as they are. Vite, create-react-app and Next need to know their public base
        path instead; they get this URL, which jupyter-server-proxy forwards unchanged.
        """
        base_url = self.serverapp.base_url
        return url_path_join(base_url, "proxy", "absolute", str(self.preview_port), "/")

    def preview_environment(self) -> dict[str, str]:
        """Variables that tell processes started in a terminal where to serve."""
        return {
            "PORT": str(self.preview_port),
            "CODEPILOT_PREVIEW_PORT": str(self.preview_port),
            "CODEPILOT_PREVIEW_URL": self.preview_url,
        }

    def _link_jupyter_server_extension(self, serverapp):
        super()._link_jupyter_server_extension(serverapp)
        configure_terminals(serverapp)

    def initialize_settings(self):
        # jupyter_server_terminals loads before us (extensions load in name order), so its
        # manager exists; a server with terminals disabled has none.
        terminal_manager = self.serverapp.web_app.settings.get("terminal_manager")
        if terminal_manager is None:
            self.log.warning("Code Pilot: terminals are disabled on this server")
        else:
            if not isinstance(terminal_manager, WorkspaceTerminalManager):
                self.log.warning(
                    "Code Pilot: terminal manager is %s, not WorkspaceTerminalManager; "
                    "terminal echo will be delayed by Nagle's algorithm",
                    type(terminal_manager).__name__,
                )
            terminal_manager.extra_env.update(self.preview_environment())
        self.log.info(
            "Code Pilot: workspace %s, preview on 127.0.0.1:%s at %spreview/",
            self.serverapp.root_dir,
            self.preview_port,
            self.serverapp.base_url,
        )

    def initialize_handlers(self):
        self.handlers.extend(preview_handlers(self.preview_port))

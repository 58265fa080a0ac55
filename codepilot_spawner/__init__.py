"""Hub-side parts of Code Pilot: spawners and the pure functions they are built from."""

__all__ = ["CodePilotLocalSpawner", "CodePilotSpawner"]


def __getattr__(name):
    # Spawners load only where they are used: the hub's services (the preview gateway,
    # which its supervisor may have to start again at once) never pay for JupyterHub's
    # database layer, and one-machine installs never pay for KubeSpawner.
    if name == "CodePilotLocalSpawner":
        from .spawners.local import CodePilotLocalSpawner

        return CodePilotLocalSpawner
    if name == "CodePilotSpawner":
        from .spawners.kube import CodePilotSpawner

        return CodePilotSpawner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Hub-side parts of Code Pilot: spawners and the pure functions they are built from."""

from .local import CodePilotLocalSpawner

__all__ = ["CodePilotLocalSpawner", "CodePilotSpawner"]


def __getattr__(name):
    # KubeSpawner loads only where it is used: one-machine installs never pay for it.
    if name == "CodePilotSpawner":
        from .kube import CodePilotSpawner

        return CodePilotSpawner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

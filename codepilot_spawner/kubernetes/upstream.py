"""What the spawners use of KubeSpawner and JupyterHub that neither documents as API.

Everything else comes through public API: traits, hooks (``modify_pod_hook``,
``after_pod_created_hook``), ``get_pod_manifest``, ``progress``, ``kubespawner.objects``,
``jupyterhub.utils``. Checked against jupyterhub 6.1.1 and jupyterhub-kubespawner 7.1.0;
``tests/test_upstream_api.py`` fails when one of these changes under us.
"""

CHECKED_VERSIONS = {"jupyterhub": "6.1.1", "jupyterhub-kubespawner": "7.1.0"}

# KubeSpawner's name for the server container; its readiness checks and the pod's
# ``notebook-port`` look for it.
SERVER_CONTAINER = "notebook"

# The key of KubeSpawner's progress events that holds the Kubernetes event they report.
RAW_EVENT = "raw_event"


def core_api(spawner):
    """KubeSpawner's shared ``CoreV1Api`` client (its ``api`` attribute): the same client,
    host and timeouts as its own calls."""
    return spawner.api


def reflected_pod(spawner) -> dict | None:
    """The server's pod as KubeSpawner's pod reflector last saw it (a dict), else None."""
    reflector = spawner.pod_reflector
    if reflector is None:
        return None
    return reflector.pods.get(f"{spawner.namespace}/{spawner.pod_name}")


def raw_event(progress_event: dict) -> dict | None:
    """The Kubernetes event behind one of KubeSpawner's progress events, if it has one."""
    return progress_event.get(RAW_EVENT)

"""What ``CodePilotSpawner`` uses of KubeSpawner that it does not document as API.

Everything else comes through public API: traits, hooks (``modify_pod_hook``,
``after_pod_created_hook``), ``get_pod_manifest``, ``progress``, ``kubespawner.objects``,
``jupyterhub.utils``. Each member below was checked on jupyterhub-kubespawner 7.0.0 to
7.1.0 (pyproject: ``>=7,<8``).
"""

# KubeSpawner's name for the server container; its readiness checks and the pod's
# ``notebook-port`` look for it. Checked on kubespawner 7.0.0-7.1.0. If it drifts, no
# pod manifest can be built (the restore and preview parts find no server container):
# every start fails.
SERVER_CONTAINER = "notebook"

# The key of KubeSpawner's progress events that holds the Kubernetes event they report.
# Checked on kubespawner 7.0.0-7.1.0. If it drifts, the spawn page shows KubeSpawner's own
# terse messages instead of what ``podstatus.describe_event`` says of each event.
RAW_EVENT = "raw_event"


def core_api(spawner):
    """KubeSpawner's shared ``CoreV1Api`` client (its ``api`` attribute): the same client,
    host and timeouts as its own calls.

    Checked on kubespawner 7.0.0-7.1.0. If it drifts, the per-server Secret can be
    neither created, owned nor deleted (the start fails) and the restore log is unread.
    """
    return spawner.api


def reflected_pod(spawner) -> dict | None:
    """The server's pod as KubeSpawner's pod reflector last saw it (a dict), else None.

    Checked on kubespawner 7.0.0-7.1.0 (reflector ``pods`` keyed ``namespace/pod name``).
    If it drifts, the state keeps no ``preview_host`` (previews of Kubernetes servers are
    unreachable) and restore progress is never reported.
    """
    reflector = spawner.pod_reflector
    if reflector is None:
        return None
    return reflector.pods.get(f"{spawner.namespace}/{spawner.pod_name}")


def raw_event(progress_event: dict) -> dict | None:
    """The Kubernetes event behind one of KubeSpawner's progress events, if it has one.

    Checked on kubespawner 7.0.0-7.1.0 (see ``RAW_EVENT``).
    """
    return progress_event.get(RAW_EVENT)

"""What a user pod's status and events say, read from the dicts KubeSpawner's reflectors hold.

Pure functions over plain dicts: ``CodePilotSpawner`` turns them into progress messages
and into where the preview gateway reaches the pod.
"""

from .objects import RESTORE_CONTAINER


def describe_event(event: dict) -> str | None:
    """A Kubernetes event about a user pod, said the way a person would; None to skip it."""
    reason = event.get("reason") or ""
    message = event.get("message") or ""
    field_path = (event.get("involvedObject") or {}).get("fieldPath") or ""
    restoring = RESTORE_CONTAINER in field_path
    if reason == "Scheduled":
        node = message.rsplit(" to ", 1)[-1] if " to " in message else ""
        return f"Server scheduled on {node}" if node else "Server scheduled"
    if reason == "FailedScheduling":
        return f"Waiting for room in the cluster: {message}"
    if reason == "Pulling":
        return "Pulling the runner image (the first start on a machine takes longer)"
    if reason == "Pulled":
        return None if restoring or "already present" in message else "Runner image pulled"
    if reason == "Started":
        return "Restoring workspace" if restoring else "Starting server"
    if event.get("type") == "Warning":
        return f"Problem: {message}" if message else f"Problem: {reason}"
    return None


def container_state(pod: dict | None, name: str) -> str | None:
    """ "waiting", "running" or "terminated" for a (init) container of a pod dict, else None."""
    if not pod:
        return None
    status = pod.get("status") or {}
    for container in [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]:
        if container.get("name") == name:
            state = container.get("state") or {}
            for phase in ("terminated", "running", "waiting"):
                if state.get(phase) is not None:
                    return phase
    return None


def pod_ip(pod: dict | None) -> str | None:
    """The IP of a pod dict (as KubeSpawner's reflector holds it), or None before it has one."""
    if not pod:
        return None
    return (pod.get("status") or {}).get("podIP") or None

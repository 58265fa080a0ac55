"""Processes as /proc shows them."""


def alive(pid: int) -> bool:
    """Whether ``pid`` is a living process (a zombie has ended)."""
    try:
        with open(f"/proc/{pid}/stat") as stream:
            return stream.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False

"""Find and end every process a user server started, as the end of a pod would.

Terminals run their shells in sessions of their own, and a dev server started with
``nohup`` or ``&`` outlives the shell, so neither the server's process group nor its
children cover them. Every process inherits the environment variable that tags the
server, though, so /proc finds them all.
"""

import asyncio
import contextlib
import os
import signal
import time

TAG_VARIABLE = "WORKSPACE_PROCESS_TAG"


def tagged_pids(tag: str, proc_root: str = "/proc") -> list[int]:
    """Pids whose initial environment has ``WORKSPACE_PROCESS_TAG=<tag>``."""
    needle = f"{TAG_VARIABLE}={tag}".encode()
    pids = []
    for entry in os.scandir(proc_root):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"{entry.path}/environ", "rb") as f:
                environ = f.read()
        except OSError:  # gone, or not ours to read
            continue
        if needle in environ.split(b"\0"):
            pids.append(int(entry.name))
    return pids


def signal_pids(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


async def end_tagged_processes(tag: str, grace: float = 5.0) -> list[int]:
    """SIGTERM every tagged process, SIGKILL what is left after ``grace`` seconds.

    Returns the pids that had to be killed.
    """
    pids = await asyncio.to_thread(tagged_pids, tag)
    if not pids:
        return []
    signal_pids(pids, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        pids = await asyncio.to_thread(tagged_pids, tag)
        if not pids:
            return []
    signal_pids(pids, signal.SIGKILL)
    return pids

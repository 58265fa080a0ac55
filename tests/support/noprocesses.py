"""The fast tier's rule, enforced: a test not marked ``integration`` starts no process.

While ``refused()`` is active every way Python starts a process (``subprocess``, which
asyncio's subprocesses use too, ``os.fork``/``forkpty``, ``posix_spawn``, ``os.system``)
raises ``ProcessStarted``. It derives from BaseException so that no ``except Exception``
in the code under test hides it.
"""

import contextlib
import os
import subprocess


class ProcessStarted(BaseException):
    def __init__(self, what: str):
        super().__init__(
            f"{what}: a test of the fast tier starts no process; "
            "mark it @pytest.mark.integration (tests/conftest.py)"
        )


def _refusing(what: str):
    def refuse(*args, **kwargs):
        raise ProcessStarted(what)

    return refuse


@contextlib.contextmanager
def refused():
    """No process can be started inside this block."""
    saved = [(subprocess.Popen, "_execute_child")]
    saved += [(os, name) for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system")]
    originals = [(owner, name, getattr(owner, name)) for owner, name in saved]
    for owner, name, _ in originals:
        setattr(owner, name, _refusing(f"{getattr(owner, '__name__', owner)}.{name}"))
    try:
        yield
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)

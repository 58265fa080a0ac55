"""Progress messages a spawner reports while it starts a server.

The restore's own progress records are ``codepilot_contracts.restoreprogress``.
"""

import asyncio


class ProgressLog:
    """Events appended by ``start()`` and followed by JupyterHub's progress stream.

    Any number of followers (browser tabs) can follow one log; each gets every event.
    """

    def __init__(self):
        self.events: list[dict] = []
        self.finished = False
        self._changed = asyncio.Event()

    def report(self, progress: int, message: str) -> None:
        self.events.append({"progress": progress, "message": message})
        self._wake()

    def finish(self) -> None:
        self.finished = True
        self._wake()

    def _wake(self) -> None:
        # Replace the event so followers that wake up wait on a fresh one.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def follow(self):
        """Yield every event so far, then new ones as they come, until finished."""
        sent = 0
        while True:
            changed = self._changed
            while sent < len(self.events):
                yield self.events[sent]
                sent += 1
            if self.finished:
                return
            await changed.wait()

"""Progress messages a spawner reports while it starts a server."""

import asyncio
import json


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


def restore_record(line: str | bytes) -> dict:
    """One line of ``python -m server_extension.sync restore --progress json``; {} else."""
    try:
        record = json.loads(line)
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def restore_counts(record: dict) -> tuple[int, int] | None:
    """(files done, files in all) of a progress record, else None."""
    done, total = record.get("done"), record.get("total")
    if isinstance(done, int) and isinstance(total, int) and 0 <= done <= total:
        return done, total
    return None


def restore_share(record: dict) -> float | None:
    """How much of the restore is done (0..1) by bytes when known, else by files; None if
    the record is not a progress record."""
    counts = restore_counts(record)
    if counts is None:
        return None
    done_bytes, total_bytes = record.get("bytes_done"), record.get("bytes_total")
    if isinstance(done_bytes, int) and isinstance(total_bytes, int) and total_bytes > 0:
        return min(done_bytes / total_bytes, 1.0)
    done, total = counts
    return done / total if total else 1.0


def restore_message(record: dict) -> str:
    """What the spawn page says: ``Restoring workspace: 1.2/48 MB`` (or ``230/2000 files``)."""
    done_bytes, total_bytes = record.get("bytes_done"), record.get("bytes_total")
    if isinstance(done_bytes, int) and isinstance(total_bytes, int) and total_bytes > 0:
        return f"Restoring workspace: {_megabytes(done_bytes)}/{_megabytes(total_bytes)} MB"
    done, total = restore_counts(record) or (0, 0)
    return f"Restoring workspace: {done}/{total} files"


def _megabytes(size: int) -> str:
    megabytes = size / 1_000_000
    return f"{megabytes:.1f}" if megabytes < 10 else f"{megabytes:.0f}"

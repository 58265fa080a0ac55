"""A save whose bytes equal the file's writes nothing.

One Ctrl+S in a shared document is often two saves of the same text: JupyterLab's, then
jupyter-collaboration's own a second later (its ``document_save_delay``). Each write wakes
the dev server that watches the file (Flask restarts, Vite reloads the preview), costs an
fsync on a disk the class shares and, in sync mode, an upload. Unchanged, the file keeps
its mtime too, so editors and the collaboration room see no change on disk.
"""

import io
import os
from contextlib import contextmanager
from contextvars import ContextVar

# The writes of this task's saves, while ``recorded_writes`` watches them.
SAVE_WRITES: ContextVar[list[bool] | None] = ContextVar("save_writes", default=None)

COMPARE_BLOCK = 1 << 20


@contextmanager
def recorded_writes():
    """Inside: a list that gets, for each write of this task's saves, True (written) or
    False (the file already held those bytes). A save's worker thread runs in a copy of
    the task's context, so it appends to the same list."""
    writes: list[bool] = []
    token = SAVE_WRITES.set(writes)
    try:
        yield writes
    finally:
        SAVE_WRITES.reset(token)


def holds_bytes(path: str, data: memoryview) -> bool:
    """Whether the regular file at ``path`` holds exactly ``data`` (blocking)."""
    try:
        with open(path, "rb") as existing:
            if os.fstat(existing.fileno()).st_size != len(data):
                return False
            for start in range(0, len(data), COMPARE_BLOCK):
                if existing.read(COMPARE_BLOCK) != data[start : start + COMPARE_BLOCK]:
                    return False
            return True
    except OSError:  # missing, unreadable, a folder: the write decides
        return False


class WritesOnlyChanges:
    """Mixin for a file contents manager (listed before it): what stock would write goes
    to memory first, and reaches the disk through stock's ``atomic_writing`` only when it
    differs from the file's bytes.

    A write that fails half-way leaves the file as it was, as stock's does. The calls it
    does not know (extra ``io.open`` arguments) go to stock as they are.

    Checked on jupyter-server 2.14.0-2.21.1: ``_save_file`` and ``_save_notebook`` write
    through ``atomic_writing`` (documented), with ``text=False`` and with
    ``encoding="utf-8"``. If it drifts, unchanged saves are written again as before;
    ``tests/test_unchanged_saves.py`` fails.
    """

    @contextmanager
    def atomic_writing(self, os_path, text=True, encoding="utf-8", **kwargs):
        if kwargs:
            with super().atomic_writing(os_path, text=text, encoding=encoding, **kwargs) as f:
                yield f
            return
        buffer = io.BytesIO()
        # Newlines as io.open's text mode writes them (os.linesep).
        stream = io.TextIOWrapper(buffer, encoding=encoding) if text else buffer
        yield stream
        if text:
            stream.detach()  # flushes, and leaves the buffer open to read
        data = buffer.getbuffer()
        try:
            unchanged = holds_bytes(os_path, data)
            writes = SAVE_WRITES.get()
            if writes is not None:
                writes.append(not unchanged)
            if not unchanged:
                with super().atomic_writing(os_path, text=False) as f:
                    f.write(data)
        finally:
            data.release()

"""Bytes handed from the event loop to a worker thread that reads them as a file.

A snapshot is unpacked while it downloads: the event loop hands over each chunk it
receives (``try_put`` when there is room, else ``put`` through ``asyncio.to_thread``: it
waits while the reader is behind), and the extractor reads the pipe in a worker thread.
A reader that stops early (a refused archive) calls ``abandon``, so the writer stops
downloading instead of waiting forever.
"""

import io
import queue
import threading

_END = object()


class ChunkPipe(io.RawIOBase):
    def __init__(self, max_chunks: int = 16):
        self._chunks: queue.Queue = queue.Queue(max_chunks)
        self._pending = memoryview(b"")
        self._read_all = False
        self._abandoned = threading.Event()
        # Set once the end (or a failure) was handed over, or the reader gave up.
        self.ended = False

    def readable(self) -> bool:
        return True

    def _fill(self) -> bool:
        """Wait for the next chunk if none is pending; False at the end."""
        while not self._pending:
            if self._read_all:
                return False
            item = self._chunks.get()
            if item is _END:
                self._read_all = True
                return False
            if isinstance(item, BaseException):
                self._read_all = True
                raise OSError(f"download interrupted: {item}")
            self._pending = memoryview(item)
        return True

    def readinto(self, buffer) -> int:
        if not self._fill():
            return 0
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count

    def read(self, size: int = -1) -> bytes:
        """What is there of the next chunk, up to ``size`` bytes (no buffer allocated)."""
        if not self._fill():
            return b""
        count = len(self._pending) if size < 0 else min(size, len(self._pending))
        data = self._pending[:count].tobytes()
        self._pending = self._pending[count:]
        return data

    def try_put(self, item) -> bool:
        """Hand over a chunk if there is room now (never blocks); False otherwise."""
        if self._abandoned.is_set():
            return False
        try:
            self._chunks.put_nowait(item)
        except queue.Full:
            return False
        return True

    def put(self, item) -> bool:
        """Hand over a chunk (blocking); False once the reader has given up."""
        while not self._abandoned.is_set():
            try:
                self._chunks.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def end(self) -> bool:
        """The last chunk was put (blocking)."""
        self.ended = True
        return self.put(_END)

    def fail(self, error: BaseException) -> bool:
        """The download failed: the reader gets an ``OSError`` (blocking)."""
        self.ended = True
        return self.put(error)

    def abandon(self) -> None:
        """The reader is done, early or not: pending and later puts return False."""
        self._abandoned.set()

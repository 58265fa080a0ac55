"""A gzip-compressed tar archive read once, start to end: its members as they come.

What ``write_archive`` produces is understood: ustar headers (checked by their checksum)
with pax records for long names and large sizes (``path``, ``linkpath``, ``size``,
``mtime``). Members of any other type are handed on as they are, for the caller to
refuse. zlib checks gzip's CRC and length at the end, and the stream must end where the
gzip stream ends: a cut-off, altered or padded-out archive fails with ``StreamError``.

Data comes as memoryviews of the decompressed pieces (no copy), bounded in size, so a
small archive that inflates to gigabytes is never held in memory at once.
"""

import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

MiB = 1024 * 1024
BLOCK = tarfile.BLOCKSIZE
ZERO_BLOCK = bytes(BLOCK)
# Largest pax header we read: a few long names, never megabytes.
MAX_PAX_BYTES = MiB


class StreamError(Exception):
    """A damaged or truncated archive."""


@dataclass(slots=True)
class Member:
    name: str
    type: bytes  # tarfile's type flags: REGTYPE, DIRTYPE, SYMTYPE, ...
    mode: int
    mtime: float
    size: int
    linkname: str


def parse_pax(data: bytes) -> dict[str, str]:
    """The records of a pax header (``"<length> <key>=<value>\\n"`` each)."""
    records = {}
    position = 0
    while position < len(data):
        space = data.find(b" ", position)
        try:
            length = int(data[position:space]) if space > position else 0
        except ValueError:
            length = 0
        end = position + length
        if length <= 0 or end > len(data) or data[end - 1 : end] != b"\n":
            raise StreamError("bad pax header")
        key, equals, value = data[space + 1 : end - 1].partition(b"=")
        if not equals:
            raise StreamError("bad pax header")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        position = end
    return records


def apply_pax(member: Member, records: dict[str, str]) -> Member:
    """``member`` with what its pax records say (an empty value keeps the header's)."""
    try:
        if records.get("path"):
            member.name = records["path"]
        if records.get("linkpath"):
            member.linkname = records["linkpath"]
        if records.get("size"):
            member.size = int(records["size"])
        if records.get("mtime"):
            member.mtime = float(records["mtime"])
    except ValueError as error:
        raise StreamError(f"bad pax record: {error}") from error
    if member.size < 0:
        raise StreamError("bad pax record: negative size")
    return member


class GzipPieces:
    """Decompressed bytes of a gzip stream, read from ``source`` (a binary file)."""

    def __init__(self, source: BinaryIO, read_size: int = MiB, piece_size: int = MiB):
        self._source = source
        self._read_size = read_size
        self._piece_size = piece_size
        # 16 + MAX_WBITS: a gzip wrapper, whose CRC and length zlib checks at the end.
        self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._input = b""
        self._view = memoryview(b"")
        self._offset = 0

    def _next_piece(self) -> bool:
        """Decompress the next piece; False at the (checked) end of the gzip stream."""
        while not self._inflate.eof:
            if not self._input:
                self._input = self._source.read(self._read_size)
                if not self._input:
                    raise StreamError("the gzip stream is cut off")
            try:
                piece = self._inflate.decompress(self._input, self._piece_size)
            except zlib.error as error:
                raise StreamError(f"gzip: {error}") from error
            self._input = self._inflate.unconsumed_tail
            if piece:
                self._view, self._offset = memoryview(piece), 0
                return True
        if self._inflate.unused_data or self._input or self._source.read(1):
            raise StreamError("data after the end of the gzip stream")
        return False

    def pieces(self, size: int) -> Iterator[memoryview]:
        """The next ``size`` bytes, in pieces as they are decompressed."""
        while size:
            if self._offset == len(self._view) and not self._next_piece():
                raise StreamError("the tar stream is cut off")
            take = min(size, len(self._view) - self._offset)
            start = self._offset
            # Counted before the yield: a reader that stops here has still consumed it.
            self._offset += take
            size -= take
            yield self._view[start : start + take]

    def read(self, size: int) -> bytes:
        return b"".join(self.pieces(size))

    def rest(self) -> Iterator[memoryview]:
        """Everything left until the gzip stream's end (which is then checked)."""
        while self._offset < len(self._view) or self._next_piece():
            start, self._offset = self._offset, len(self._view)
            yield self._view[start:]


def padding(size: int) -> int:
    return -size % BLOCK


class TarStream:
    """The members of a tar stream in order: ``next()`` gives the next header, then
    ``data()`` the current member's bytes (whatever the caller does not read is skipped)."""

    def __init__(self, source: BinaryIO, max_trailing_bytes: int = 64 * MiB):
        self._gzip = GzipPieces(source)
        self._data_left = 0  # of the current member, not read yet
        self._padding_left = 0
        self._max_trailing = max_trailing_bytes

    def _skip(self, size: int) -> None:
        for _ in self._gzip.pieces(size):
            pass

    def _header(self) -> Member | None:
        block = self._gzip.read(BLOCK)
        if block == ZERO_BLOCK:
            return None
        try:
            info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        except tarfile.HeaderError as error:
            raise StreamError(f"bad tar header: {error}") from error
        return Member(info.name, info.type, info.mode, info.mtime, info.size, info.linkname)

    def next(self) -> Member | None:
        """The next member's header; None at the (checked) end of the archive."""
        self._skip(self._data_left + self._padding_left)
        self._data_left = self._padding_left = 0
        member = self._header()
        records: dict[str, str] = {}
        while member is not None and member.type == tarfile.XHDTYPE:
            if member.size > MAX_PAX_BYTES:
                raise StreamError("pax header too large")
            records.update(parse_pax(self._gzip.read(member.size)))
            self._skip(padding(member.size))
            member = self._header()
        if member is None:
            if records:
                raise StreamError("pax header without a member")
            self._finish()
            return None
        member = apply_pax(member, records)
        if member.type == tarfile.DIRTYPE:
            member.name = member.name.rstrip("/")
        if member.type in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE):
            self._data_left, self._padding_left = member.size, padding(member.size)
        return member

    def data(self) -> Iterator[memoryview]:
        """The current member's bytes, in pieces."""
        for piece in self._gzip.pieces(self._data_left):
            self._data_left -= len(piece)
            yield piece

    def _finish(self) -> None:
        """After the end-of-archive block: only zeros (tar's padding) until gzip's end."""
        trailing = 0
        for piece in self._gzip.rest():
            trailing += len(piece)
            if trailing > self._max_trailing:
                raise StreamError("too much padding after the end of the tar archive")
            if piece.tobytes().strip(b"\x00"):
                raise StreamError("data after the end of the tar archive")

"""One folder as one compressed tar archive, and back, refusing anything that could escape.

Archives hold names relative to the folder. Writing keeps regular files (with their
mode, so executable bits survive), folders and symlinks that stay inside the folder;
symlinks that point out of it (a venv's ``bin/python`` -> ``/usr/bin/python3``) are not
members but listed in the summary, for the caller to keep beside the archive; hardlinks,
sockets and devices are left out.

Reading is a streaming extractor of our own (``extractall`` with tarfile's ``data``
filter resolves every member's path on disk and sets owner, mode and times one call at a
time: most of an unpack's CPU). Every name is checked by string rules alone (no
absolute path, no ``..``, ``.`` or empty part, no NUL, nothing below a symlink or file
member, no name twice), hardlinks, devices and fifos are refused, and so are more bytes
than allowed. Files are created in a fresh scratch folder, ``O_EXCL|O_NOFOLLOW``, with
their permission bits only, by worker threads while the archive is still being read.
Symlink members (which may point inside only) are made after every file, then the listed
links out, as links only: nothing is ever written through a link. The scratch folder
replaces the target only once all is there: a refused or damaged archive leaves nothing.
"""

import contextlib
import io
import os
import posixpath
import shutil
import stat
import tarfile
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .tarstream import Member, StreamError, TarStream


class ArchiveError(Exception):
    """An archive that cannot be unpacked safely or completely; nothing was written."""


# A folder with more links out than this is not one an installer made.
MAX_LINKS_OUT = 10_000


@dataclass
class ArchiveSummary:
    files: int = 0
    bytes: int = 0
    # Symlinks out of the folder, by name: made again after unpacking (``extract_archive``).
    links_out: dict[str, str] = field(default_factory=dict)
    # Special files (sockets, fifos, devices) and links out beyond ``MAX_LINKS_OUT``.
    left_out: list[str] = field(default_factory=list)


def link_stays_inside(relname: str, target: str) -> bool:
    """Whether the symlink ``relname`` -> ``target`` resolves inside the archived folder.

    ``..`` may only lead the target, and no higher than the link's own folder: then even
    a chain of such links (each resolved on disk, not as strings) stays inside.
    """
    if not target or target.startswith("/") or "\x00" in target:
        return False
    parts = [part for part in target.split("/") if part not in ("", ".")]
    ups = 0
    while ups < len(parts) and parts[ups] == "..":
        ups += 1
    return ".." not in parts[ups:] and ups <= relname.count("/")


def tarinfo_for(relname: str, info: os.stat_result, link_target: str = "") -> tarfile.TarInfo:
    """The member for one entry; built by hand so no file becomes a hardlink member."""
    member = tarfile.TarInfo(relname)
    member.mode = stat.S_IMODE(info.st_mode)
    member.mtime = int(info.st_mtime)
    if stat.S_ISDIR(info.st_mode):
        member.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(info.st_mode):
        member.type = tarfile.SYMTYPE
        member.linkname = link_target
    else:
        member.type = tarfile.REGTYPE
        member.size = info.st_size
    return member


def write_archive(folder: Path, archive: Path, level: int = 1) -> ArchiveSummary:
    """Pack ``folder`` into the gzip-compressed tar ``archive`` (blocking; run in a thread)."""
    summary = ArchiveSummary()
    with tarfile.open(archive, "w:gz", compresslevel=level, format=tarfile.PAX_FORMAT) as tar:
        pending = [""]
        while pending:
            relfolder = pending.pop()
            with os.scandir(folder / relfolder if relfolder else folder) as entries:
                for entry in sorted(entries, key=lambda entry: entry.name):
                    relname = posixpath.join(relfolder, entry.name) if relfolder else entry.name
                    try:
                        info = entry.stat(follow_symlinks=False)
                        if stat.S_ISLNK(info.st_mode):
                            target = os.readlink(entry.path)
                            if not link_stays_inside(relname, target):
                                if len(summary.links_out) < MAX_LINKS_OUT and "\x00" not in target:
                                    summary.links_out[relname] = target
                                else:
                                    summary.left_out.append(relname)
                                continue
                            tar.addfile(tarinfo_for(relname, info, target))
                        elif stat.S_ISDIR(info.st_mode):
                            tar.addfile(tarinfo_for(relname, info))
                            pending.append(relname)
                        elif stat.S_ISREG(info.st_mode):
                            with open(entry.path, "rb") as file:
                                member = tarinfo_for(relname, os.fstat(file.fileno()))
                                tar.addfile(member, file)
                            summary.files += 1
                            summary.bytes += member.size
                        else:
                            summary.left_out.append(relname)
                    except (FileNotFoundError, NotADirectoryError):
                        continue  # removed while being packed
    return summary


# --- reading --------------------------------------------------------------------------------

FOLDER, FILE, SYMLINK = "folder", "file", "symlink"
# A file at most this large is read whole and handed to a writer thread.
SMALL_FILE = 1024 * 1024
# os.open flags for a member's file: never an existing file, never through a link.
CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def check_member_name(name: str) -> str:
    """A member's name, if string rules alone show it stays inside; raises ``ArchiveError``."""
    if not name or "\x00" in name:
        raise ArchiveError(f"member {name!r} has an empty name or a NUL")
    if name.startswith("/"):
        raise ArchiveError(f"member {name!r} has an absolute path")
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise ArchiveError(f"member {name!r} has an empty, '.' or '..' part")
    return name


def member_kind(member: Member) -> str:
    """FOLDER, FILE or SYMLINK; anything else is refused."""
    if member.type in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE):
        return FILE
    if member.type == tarfile.DIRTYPE:
        return FOLDER
    if member.type == tarfile.SYMTYPE:
        return SYMLINK
    if member.type == tarfile.LNKTYPE:
        raise ArchiveError(f"member {member.name!r} is a hardlink")
    if member.type in (tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE):
        raise ArchiveError(f"member {member.name!r} is a device or special file")
    raise ArchiveError(f"member {member.name!r} has a type this version never writes")


def file_mode(mode: int) -> int:
    """The permission bits a file gets (the ``data`` filter's rule): no set-id, sticky or
    group/other write bits; readable and writable by its owner; executable only if the
    owner may execute it."""
    mode &= 0o755
    if not mode & 0o100:
        mode &= ~0o111
    return mode | 0o600


class MemberNames:
    """What the archive put where, by name: the rules that need more than one member."""

    def __init__(self):
        self._kinds: dict[str, str] = {"": FOLDER}
        self._members: set[str] = set()

    def add(self, name: str, kind: str) -> tuple[list[str], bool]:
        """Record a member; returns the folders to make first (outermost first) and
        whether the member itself is to be made (a folder may be there already, made
        for an earlier member below it). Raises ``ArchiveError``."""
        existing = self._kinds.get(name)
        if name in self._members:
            raise ArchiveError(f"member {name!r} appears twice")
        if existing is not None and not (existing == FOLDER and kind == FOLDER):
            raise ArchiveError(f"member {name!r} is a {kind} below which there are members")
        missing = []
        parent = name.rpartition("/")[0]
        while parent not in self._kinds:
            missing.append(parent)
            parent = parent.rpartition("/")[0]
        if self._kinds[parent] != FOLDER:
            raise ArchiveError(f"member {name!r} is below the {self._kinds[parent]} {parent!r}")
        missing.reverse()
        for folder in missing:
            self._kinds[folder] = FOLDER
        self._kinds[name] = kind
        self._members.add(name)
        return missing, existing is None


def _write_all(fd: int, pieces: list) -> None:
    written = os.writev(fd, pieces) if pieces else 0
    for piece in pieces:  # a short writev (rare) continues piece by piece
        if written >= len(piece):
            written -= len(piece)
            continue
        view = memoryview(piece)[written:]
        written = 0
        while view:
            view = view[os.write(fd, view) :]


def _write_file(path: str, pieces, mode: int, mtime: float) -> None:
    fd = os.open(path, CREATE_FLAGS, mode)
    try:
        if isinstance(pieces, list):
            _write_all(fd, pieces)
        else:
            for piece in pieces:
                _write_all(fd, [piece])
        if 0 <= mtime < 2**33:  # tools (make, Python's .pyc check) compare mtimes
            os.utime(fd, (mtime, mtime))
    finally:
        os.close(fd)


class FileWriter:
    """Writes files in worker threads while the archive is read (file system calls and
    zlib release the GIL): small files whole, in batches; large ones in the calling
    thread, piece by piece. The first error is raised by ``write`` or ``close``."""

    def __init__(self, threads: int = 2, batch_bytes: int = 1024 * 1024, max_batches: int = 8):
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="unpack")
        self._batch: list = []
        self._batch_bytes = 0
        self._max_batch_bytes = batch_bytes
        # Batches handed over and not written yet hold their bytes: a bounded number.
        self._slots = threading.BoundedSemaphore(max_batches)
        self._stopped = False
        self._error: BaseException | None = None

    def write(self, path: str, member: Member, data) -> None:
        self._raise_error()
        mode = file_mode(member.mode)
        if member.size > SMALL_FILE:
            _write_file(path, data, mode, member.mtime)
            return
        self._batch.append((path, list(data), mode, member.mtime))
        self._batch_bytes += member.size + 4096  # a file costs more than its bytes
        if self._batch_bytes >= self._max_batch_bytes:
            self._hand_over()

    def _hand_over(self) -> None:
        if not self._batch:
            return
        batch, self._batch, self._batch_bytes = self._batch, [], 0
        self._slots.acquire()
        self._pool.submit(self._write_batch, batch)

    def _write_batch(self, batch: list) -> None:
        try:
            for path, pieces, mode, mtime in batch:
                if self._stopped or self._error is not None:
                    return
                _write_file(path, pieces, mode, mtime)
        except BaseException as error:  # raised again in the reading thread
            self._error = self._error or error
        finally:
            self._slots.release()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def close(self, complete: bool) -> None:
        """Wait for the writers: all batches written if ``complete``, else abandoned."""
        if complete:
            self._hand_over()
        else:
            self._stopped = True
        self._pool.shutdown(wait=True)
        if complete:
            self._raise_error()


def _unpack_members(stream: TarStream, unpacked: Path, max_bytes: int) -> list[tuple[str, str]]:
    """Make every folder and file of the archive in the fresh folder ``unpacked``;
    returns the symlink members (name, target), checked, to make once all is written."""
    names = MemberNames()
    links = []
    total = 0
    root = os.fspath(unpacked)
    writer = FileWriter()
    complete = False
    try:
        while (member := stream.next()) is not None:
            name = check_member_name(member.name)
            kind = member_kind(member)
            folders, new = names.add(name, kind)
            for folder in folders:
                os.mkdir(f"{root}/{folder}")
            if kind == FILE:
                total += member.size
                if total > max_bytes:
                    raise ArchiveError(f"it unpacks to more than {max_bytes} bytes")
                writer.write(f"{root}/{name}", member, stream.data())
            elif kind == SYMLINK:
                if not link_stays_inside(name, member.linkname):
                    raise ArchiveError(f"member {name!r} is a symlink out: {member.linkname!r}")
                links.append((name, member.linkname))
            elif new:
                os.mkdir(f"{root}/{name}")
        complete = True
    finally:
        writer.close(complete)
    return links


def check_links_out(links: dict) -> dict[str, str]:
    """Links out as read from S3 (untrusted): names inside the folder, plain targets.

    Raises ``ArchiveError``. A link is only ever made, never written through, so its
    target may be anything the user could link to themselves.
    """
    if not isinstance(links, dict) or len(links) > MAX_LINKS_OUT:
        raise ArchiveError("refused: the list of links out is not one this version writes")
    for name, target in links.items():
        parts = name.split("/") if isinstance(name, str) else [""]
        if (
            name.startswith("/")
            or any(part in ("", ".", "..") for part in parts)
            or "\x00" in name
            or not isinstance(target, str)
            or not target
            or "\x00" in target
            or len(target) > 4096
        ):
            raise ArchiveError(f"refused: link out {name!r} -> {target!r}")
    return links


def _make_links_out(unpacked: Path, links: dict[str, str]) -> None:
    """Make the links out inside the unpacked folder; each parent must be a real folder."""
    for name, target in sorted(links.items()):
        path = unpacked / name
        current = unpacked
        for part in Path(name).parent.parts:
            current = current / part
            if current.is_symlink() or not current.is_dir():
                raise ArchiveError(f"refused: link out {name!r} is not below a folder")
        if os.path.lexists(path):
            raise ArchiveError(f"refused: link out {name!r} is also a member")
        os.symlink(target, path)


def extract_archive(
    archive: Path | io.RawIOBase,
    target: Path,
    scratch_dir: Path,
    max_bytes: int,
    links_out: dict[str, str] | None = None,
) -> None:
    """Unpack ``archive`` (a path, or a file read once from start to end) as the new
    folder ``target`` (which must not exist yet), with the symlinks ``links_out`` (name ->
    target) that point out of it.

    Raises ``ArchiveError`` (nothing written) for a hostile, damaged or oversized
    archive, or when ``target`` appeared meanwhile; ``OSError`` when reading fails.
    """
    links_out = check_links_out(links_out or {})
    unpacked = scratch_dir / f"unpack-{uuid.uuid4().hex}"
    unpacked.mkdir(parents=True)
    try:
        try:
            with contextlib.ExitStack() as stack:
                if not isinstance(archive, io.IOBase):
                    archive = stack.enter_context(open(archive, "rb"))
                links = _unpack_members(TarStream(archive), unpacked, max_bytes)
        except ArchiveError as error:
            raise ArchiveError(f"refused: {error}") from error
        except StreamError as error:
            raise ArchiveError(f"damaged or truncated archive: {error}") from error
        # Links last, files all written: nothing is ever written through one.
        for name, link_target in links:
            os.symlink(link_target, unpacked / name)
        _make_links_out(unpacked, links_out)
        if os.path.lexists(target):
            raise ArchiveError(f"{target.name!r} exists already; left as it is")
        os.rename(unpacked, target)
    finally:
        shutil.rmtree(unpacked, ignore_errors=True)

"""One folder as one compressed tar archive, and back, refusing anything that could escape.

Archives hold names relative to the folder. Writing keeps regular files (with their
mode, so executable bits survive), folders and symlinks that stay inside the folder;
symlinks that point out of it (a venv's ``bin/python`` -> ``/usr/bin/python3``) are not
members but listed in the summary, for the caller to keep beside the archive; hardlinks,
sockets and devices are left out. Reading goes through tarfile's ``data`` filter
(absolute names, ``..``, links pointing out, devices: refused) plus our own refusals
(hardlinks, more bytes than allowed), into a scratch folder. The listed links out are
made last, as links only (nothing is ever written through them), and the scratch folder
replaces the target only once all is there: a refused or damaged archive leaves nothing.
"""

import contextlib
import gzip
import io
import os
import posixpath
import shutil
import stat
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path

try:  # the data filter is in the standard library from Python 3.11.4 and 3.12
    import tarfile

    tarfile.data_filter  # noqa: B018
except AttributeError:
    from backports import tarfile


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
    """Whether the symlink ``relname`` -> ``target`` resolves inside the archived folder."""
    if not target or target.startswith("/") or "\x00" in target:
        return False
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(relname), target))
    return resolved != ".." and not resolved.startswith("../")


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


def _strict_filter(max_bytes: int):
    """tarfile's ``data`` filter, plus no hardlinks and a ceiling on unpacked bytes."""
    unpacked = 0

    def refuse(member: tarfile.TarInfo, destination: str) -> tarfile.TarInfo:
        nonlocal unpacked
        if member.name.startswith("/"):
            # The data filter would strip the slash; an archive we wrote never has one.
            raise ArchiveError(f"member {member.name!r} has an absolute path")
        if not (member.isreg() or member.isdir() or member.issym()):
            kind = "a hardlink" if member.islnk() else "a device or special file"
            raise ArchiveError(f"member {member.name!r} is {kind}")
        unpacked += member.size
        if unpacked > max_bytes:
            raise ArchiveError(f"it unpacks to more than {max_bytes} bytes")
        try:
            return tarfile.data_filter(member, destination)
        except tarfile.FilterError as error:
            raise ArchiveError(str(error)) from error

    return refuse


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
    archive, or when ``target`` appeared meanwhile.
    """
    links_out = check_links_out(links_out or {})
    unpacked = scratch_dir / f"unpack-{uuid.uuid4().hex}"
    unpacked.mkdir(parents=True)
    try:
        try:
            with contextlib.ExitStack() as stack:
                if not isinstance(archive, io.IOBase):
                    archive = stack.enter_context(open(archive, "rb"))
                # gzip checks the length and CRC at the end: a truncated download fails.
                # Stream mode: members are unpacked in order as the bytes come.
                compressed = stack.enter_context(gzip.GzipFile(fileobj=archive, mode="rb"))
                tar = stack.enter_context(tarfile.open(fileobj=compressed, mode="r|"))
                tar.extractall(unpacked, filter=_strict_filter(max_bytes))
        except ArchiveError as error:
            raise ArchiveError(f"refused: {error}") from error
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as error:
            raise ArchiveError(f"damaged or truncated archive: {error}") from error
        _make_links_out(unpacked, links_out)
        if os.path.lexists(target):
            raise ArchiveError(f"{target.name!r} exists already; left as it is")
        os.rename(unpacked, target)
    finally:
        shutil.rmtree(unpacked, ignore_errors=True)

"""The restore progress protocol: JSON lines from the restore command, read by the spawners.

``python -m server_extension.sync restore --progress json`` prints one JSON object per
line. A progress record is ``{"event": "progress", "done": n, "total": m}``, plus
``bytes_done``/``bytes_total`` when sizes are known; the last line is
``{"event": "done", ...}`` or ``{"event": "error", "message": ...}``. The local spawner
reads the lines as they come, the Kubernetes spawner from the init container's log.
"""

import json

# Arguments after the interpreter (``python``, ``sys.executable``). The command runs in
# the workspace: -P keeps it off sys.path, so a student's ``json.py`` there cannot
# replace a module the restore imports (and keep their server from ever starting).
RESTORE_COMMAND = ["-P", "-m", "server_extension.sync", "restore", "--progress", "json"]
PROGRESS = "progress"


def progress_record(done: int, total: int, bytes_done: int = 0, bytes_total: int = 0) -> dict:
    record = {"event": PROGRESS, "done": done, "total": total}
    if bytes_total:
        record.update(bytes_done=bytes_done, bytes_total=bytes_total)
    return record


def record_line(record: dict) -> str:
    """One record as its line (without the newline): what ``parse_line`` reads back."""
    return json.dumps(record)


def parse_line(line: str | bytes) -> dict:
    """The record of one line; {} when the line is not a JSON object."""
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


def last_record(text: str) -> dict:
    """The last progress record in a restore's output (a pod log), {} when there is none."""
    for line in reversed(text.splitlines()):
        record = parse_line(line)
        if restore_counts(record):
            return record
    return {}


def _byte_counts(record: dict) -> tuple[int, int] | None:
    done, total = record.get("bytes_done"), record.get("bytes_total")
    if isinstance(done, int) and isinstance(total, int) and total > 0:
        return done, total
    return None


def restore_share(record: dict) -> float | None:
    """How much of the restore is done (0..1), by bytes when known, else by files; None if
    the record is not a progress record."""
    counts = restore_counts(record)
    if counts is None:
        return None
    byte_counts = _byte_counts(record)
    if byte_counts:
        return min(byte_counts[0] / byte_counts[1], 1.0)
    done, total = counts
    return done / total if total else 1.0


def _megabytes(size: int) -> str:
    megabytes = size / 1_000_000
    return f"{megabytes:.1f}" if megabytes < 10 else f"{megabytes:.0f}"


def restore_message(record: dict) -> str:
    """What a person reads: ``Restoring workspace: 1.2/48 MB`` (or ``230/2000 files``)."""
    byte_counts = _byte_counts(record)
    if byte_counts:
        done, total = byte_counts
        return f"Restoring workspace: {_megabytes(done)}/{_megabytes(total)} MB"
    done, total = restore_counts(record) or (0, 0)
    return f"Restoring workspace: {done}/{total} files"

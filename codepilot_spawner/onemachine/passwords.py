"""The one-machine hub's passwords: from the environment, or generated once and kept.

The launcher (``make up``) decides them before anything is written: a start it refuses
leaves no files behind. It then keeps the generated ones in the data dir (mode 0600), and
the hub config reads exactly those files, never generating a second set.
"""

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

# SharedPasswordAuthenticator's minimum lengths.
MIN_USER_PASSWORD = 8
MIN_ADMIN_PASSWORD = 32

# password -> (variable that sets it, file that keeps it, bytes of a generated one)
STUDENT = ("CODEPILOT_PASSWORD", "password", 9)
ADMIN = ("CODEPILOT_ADMIN_PASSWORD", "admin_password", 32)
TEACHER = ("CODEPILOT_TEACHER_PASSWORD", "teacher_password", 12)


class PasswordError(ValueError):
    """A password the hub cannot use, or one the launcher has not kept yet."""


@dataclass(frozen=True)
class Passwords:
    student: str
    admin: str
    teacher: str | None  # None: no teachers configured
    generated: tuple[tuple[Path, str], ...] = ()  # files to keep: (path, value)


def _secret(data_dir: Path, env, kind, generate: bool) -> tuple[str, Path | None]:
    """(value, path to keep it at when it was generated just now)."""
    variable, filename, nbytes = kind
    if env.get(variable):
        return env[variable], None
    path = data_dir / filename
    try:
        return path.read_text().strip(), None
    except FileNotFoundError:
        if not generate:
            raise PasswordError(
                f"{path} is missing: start the hub with `make up`, which creates it"
            ) from None
    return secrets.token_urlsafe(nbytes), path


def decide(data_dir: Path, env=os.environ, teachers: bool = False, generate=True) -> Passwords:
    """The passwords of a hub on ``data_dir``, checked; nothing is written.

    ``generate=False`` (the hub config) reads only what the launcher kept.
    """
    student, student_file = _secret(data_dir, env, STUDENT, generate)
    admin, admin_file = _secret(data_dir, env, ADMIN, generate)
    teacher, teacher_file = _secret(data_dir, env, TEACHER, generate) if teachers else (None, None)
    if len(student) < MIN_USER_PASSWORD:
        raise PasswordError(f"CODEPILOT_PASSWORD must be at least {MIN_USER_PASSWORD} characters")
    if len(admin) < MIN_ADMIN_PASSWORD:
        raise PasswordError(
            f"CODEPILOT_ADMIN_PASSWORD must be at least {MIN_ADMIN_PASSWORD} characters"
        )
    if student == admin:
        raise PasswordError("CODEPILOT_ADMIN_PASSWORD must differ from CODEPILOT_PASSWORD")
    if teacher is not None:
        if len(teacher) < MIN_USER_PASSWORD:
            raise PasswordError(
                f"CODEPILOT_TEACHER_PASSWORD must be at least {MIN_USER_PASSWORD} characters"
            )
        if teacher == student:
            raise PasswordError("CODEPILOT_TEACHER_PASSWORD must differ from CODEPILOT_PASSWORD")
    generated = tuple(
        (path, value)
        for path, value in ((student_file, student), (admin_file, admin), (teacher_file, teacher))
        if path is not None
    )
    return Passwords(student, admin, teacher, generated)


def keep(passwords: Passwords) -> None:
    """Write the generated passwords, each readable by the hub's user only."""
    for path, value in passwords.generated:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(value + "\n")

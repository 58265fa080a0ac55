"""One Unix user per JupyterHub user, so user servers on one machine are isolated."""

import asyncio
import hashlib
import pwd
import re

# useradd accepts at most 32 characters of [a-z_][a-z0-9_-]*.
MAX_NAME_LENGTH = 32
_UNSAFE = re.compile(r"[^a-z0-9_-]")


def unix_username(hub_username: str, prefix: str = "cp-") -> str:
    """The Unix account for a hub user: ``Alice.B`` -> ``cp-alice-b-1a2b3c4d``.

    Names that are already safe keep their spelling after the prefix; others get their
    unsafe characters replaced and a hash suffix, so two hub names never share an account.
    """
    lowered = hub_username.lower()
    safe = _UNSAFE.sub("-", lowered)
    name = prefix + safe
    if safe != hub_username or len(name) > MAX_NAME_LENGTH:
        digest = hashlib.sha256(hub_username.encode()).hexdigest()[:8]
        name = f"{name[: MAX_NAME_LENGTH - 9]}-{digest}"
    return name


def lookup(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


async def ensure_unix_user(name: str, home: str, comment: str) -> pwd.struct_passwd:
    """Create the account (no password, bash, own group) unless it exists."""
    existing = lookup(name)
    if existing is not None:
        return existing
    proc = await asyncio.create_subprocess_exec(
        "useradd",
        "--no-create-home",
        "--home-dir",
        home,
        "--shell",
        "/bin/bash",
        "--user-group",
        "--comment",
        comment,
        name,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await proc.communicate()
    # Exit 9: created meanwhile by a concurrent spawn of the same user.
    if proc.returncode not in (0, 9):
        raise RuntimeError(f"useradd {name} failed ({proc.returncode}): {output.decode().strip()}")
    return pwd.getpwnam(name)


async def remove_unix_user(name: str) -> str | None:
    """Delete the account and its group (their files are removed by the caller); None,
    or why it could not be done."""
    if lookup(name) is None:
        return None
    proc = await asyncio.create_subprocess_exec(
        "userdel", name, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await proc.communicate()
    if proc.returncode != 0:
        return f"userdel {name} failed ({proc.returncode}): {output.decode().strip()}"
    return None

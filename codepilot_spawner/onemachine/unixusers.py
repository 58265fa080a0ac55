"""One Unix user per JupyterHub user, so user servers on one machine are isolated."""

import asyncio
import hashlib
import os
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


class AccountTaken(RuntimeError):
    """The account's name is this hub's, but its home is not: it is another data dir's
    (another hub on this machine) or a system account, which this hub must not use."""

    def __init__(self, name: str, home: str, expected_home: str):
        message = (
            f"The Unix account {name} exists with the home {home}, not {expected_home}: it "
            "belongs to another Code Pilot hub on this machine (another data dir) or to the "
            "system, so this hub does not use it. Give this hub accounts of its own: set "
            "CODEPILOT_ACCOUNT_PREFIX (for example CODEPILOT_ACCOUNT_PREFIX=cp2-) and restart it."
        )
        super().__init__(message)
        self.jupyterhub_message = message  # what the spawn page shows, as is


# The comment of every account a hub makes ("Code Pilot user alice").
COMMENT_PREFIX = "Code Pilot user "


def is_left_behind(account: pwd.struct_passwd) -> bool:
    """Whether ``account`` is a Code Pilot account whose data dir is gone (its home no
    longer exists): no hub uses it, and a new data dir may take it over."""
    return account.pw_gecos.startswith(COMMENT_PREFIX) and not os.path.isdir(account.pw_dir)


def is_own(account: pwd.struct_passwd, home: str) -> bool:
    """Whether ``account`` was created for ``home``: an account belongs to the data dir
    whose home it got (``<data dir>/homes/<user>``)."""
    return os.path.normpath(account.pw_dir) == os.path.normpath(home)


async def ensure_unix_user(name: str, home: str, comment: str) -> pwd.struct_passwd:
    """The account ``name`` with the home ``home``, created (no password, bash, own group)
    unless it exists; AccountTaken when it exists with another home."""
    account = lookup(name)
    if account is None:
        account = await _create(name, home, comment)
    elif not is_own(account, home) and is_left_behind(account):
        # A data dir deleted, then `make up` again: its accounts move to the new one.
        output, returncode = await _run("usermod", "--home", home, "--comment", comment, name)
        if returncode != 0:
            raise RuntimeError(f"usermod {name} failed ({returncode}): {output}")
        account = lookup(name)
    if not is_own(account, home):
        raise AccountTaken(name, account.pw_dir, home)
    return account


async def _create(name: str, home: str, comment: str) -> pwd.struct_passwd:
    output, returncode = await _run(
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
    )
    # Exit 9: created meanwhile, by a concurrent spawn of the same user or by another hub
    # (whose home the caller then refuses).
    account = lookup(name)
    if returncode not in (0, 9) or account is None:
        raise RuntimeError(f"useradd {name} failed ({returncode}): {output}")
    return account


async def remove_unix_user(name: str, home: str) -> str | None:
    """Delete the account and its group (their files are removed by the caller) when its
    home is ``home``: None, or why it was left."""
    account = lookup(name)
    if account is None:
        return None
    if not is_own(account, home):
        return f"its home is {account.pw_dir}, not {home}: it is another data dir's or the system's"
    output, returncode = await _run("userdel", name)
    if returncode != 0:
        return f"userdel {name} failed ({returncode}): {output}"
    return None


async def _run(*command: str) -> tuple[str, int]:
    proc = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await proc.communicate()
    return output.decode().strip(), proc.returncode

"""``make up`` and ``make down``: start the one-machine hub, or stop everything it started.

``python -m codepilot_spawner.onemachine.launcher`` resolves the settings once (the data dir as an
absolute path, the passwords decided and kept), checks that the hub can start (not
running already for this data dir, its ports free), prints how to log in and replaces
itself with JupyterHub on ``hub_config/jupyterhub_config_local.py``.
``python -m codepilot_spawner.onemachine.launcher stop-all`` stops the hub, what it started
and every server: servers outlive a restart of the hub, and this is how they all end.
"""

import asyncio
import getpass
import os
import socket
import sys
import time
from pathlib import Path

from .passwords import PasswordError, Passwords, decide, keep
from .processes import terminate
from .settings import REPO_ROOT, IsolationSettings, OneMachineSettings, SettingsError, data_dir
from .stopall import HUB_DATABASE, HUB_PID_FILE, leftover_proxy, running_hub, stop_everything
from .writeback import machine_writeback_note

HUB_CONFIG = REPO_ROOT / "hub_config" / "jupyterhub_config_local.py"
LOGS = "logs"  # <data dir>/logs/: a file per part of the hub
# How long a killed hub's services get to see it is gone and let go of their ports.
SERVICES_ENDING_TIMEOUT = 15.0


def login_banner(settings: OneMachineSettings, passwords: Passwords, verb="is starting") -> str:
    students = "any user name" if settings.allow_all else "users the admin has added"
    lines = [
        "",
        f"  Code Pilot {verb} at {settings.url}",
        "",
        f"  Students: {students}, password {passwords.student}",
        f"  Admin:    user {settings.admin_user}, password {passwords.admin}",
    ]
    if settings.teachers:
        lines.append(f"  Teachers: {', '.join(settings.teachers)}, password {passwords.teacher}")
    lines += [f"  Data:     {settings.data_dir}", f"  Logs:     {settings.data_dir / LOGS}"]
    if settings.tls:
        lines.append(f"  HTTPS:    {settings.tls.cert}")
        if settings.preview_tls != settings.tls:
            lines.append(f"  Previews: {settings.preview_tls.cert}")
    lines.append("")
    lines.append(origins_banner(settings))
    return "\n".join(lines)


def origins_banner(settings: OneMachineSettings) -> str:
    if not settings.subdomains:
        return (
            "  IDEs: on the hub's origin (CODEPILOT_SUBDOMAINS=false): a teacher or admin "
            "who opens a student's IDE runs that student's code with their own rights "
            "on the hub\n"
        )
    scheme, host = settings.url.split("://", 1)
    return f"  IDEs:     each user's on a host of its own, {scheme}://<user>.{host}/user/<user>/\n"


def port_taken(address: str, port: int) -> bool:
    """Whether something already listens on ``address:port`` (TIME_WAIT does not count)."""
    family, kind, proto, _, sockaddr = socket.getaddrinfo(
        address or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(sockaddr)
        except OSError:
            return True
    return False


def taken_ports(settings: OneMachineSettings) -> list[str]:
    """One line for each port the hub needs that another program holds."""
    return [
        f"port {port} ({address}) is in use by another program: set {variable} to a free port"
        for variable, address, port in settings.listening_ports()
        if port_taken(address, port)
    ]


def ports_still_taken(settings: OneMachineSettings, wait: float) -> list[str]:
    """``taken_ports``, after waiting up to ``wait`` seconds for them to be let go."""
    deadline = time.monotonic() + wait
    while (taken := taken_ports(settings)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return taken


def closed_folder(path: Path) -> Path | None:
    """The first folder above ``path`` that other users cannot pass through, if any."""
    for folder in [path, *path.parents]:
        if folder.is_dir() and not folder.stat().st_mode & 0o001:
            return folder
    return None


def unreachable_install() -> str | None:
    """Why isolated servers could not run this install (its venv and code), or None.

    As root every server runs as a Unix user of its own, which must pass through every
    folder above the venv and the repository: ``git clone`` in root's 0700 home fails so.
    """
    if os.geteuid() != 0:
        return None
    for path in (Path(sys.prefix), REPO_ROOT):
        folder = closed_folder(path.resolve())
        if folder is not None:
            return (
                f"{folder} is closed to other users (mode {folder.stat().st_mode & 0o777:o}), "
                f"so the Unix user of each server cannot run {path}: move the repository "
                f"to a folder others may pass through (such as /srv/codepilot), or "
                f"`chmod o+x {folder}`"
            )
    return None


def make_data_dir(path: Path) -> None:
    """The data dir (created when missing) with its logs folder and the hub's database,
    both private to the hub: servers may pass through the data dir, never read it."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o711)  # user servers pass through to their workspaces, nothing more
    (path / LOGS).mkdir(exist_ok=True)
    (path / LOGS).chmod(0o700)  # also when an older install made it
    # SQLite takes an empty file for a new database, and keeps the mode of an old one.
    database = os.open(path / HUB_DATABASE, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(database, 0o600)
    finally:
        os.close(database)


def data_dir_problem(path: Path) -> str | None:
    """Why the data dir cannot be used, in one line naming the variable that moves it;
    checked before anything is read or written there."""
    existing = path
    # os.path's answers, not Path's: a folder the user may not search is an answer too.
    while not os.path.exists(existing) and existing != existing.parent:
        existing = existing.parent
    if not os.path.isdir(existing):
        problem = f"{existing} is not a folder"
    elif not os.access(existing, os.W_OK | os.X_OK):
        problem = f"{existing} is not writable by {getpass.getuser()}"
    else:
        return None
    return f"cannot use the data directory {path}: {problem}; {DATA_DIR_HINT}"


DATA_DIR_HINT = "set CODEPILOT_DATA_DIR to a folder you may write"


def handed_on(settings: OneMachineSettings) -> dict:
    """What the hub config gets as this process resolved it, never re-deriving it: the
    data dir and the certificates' files as absolute paths (the hub runs in the data dir,
    where a relative ``CODEPILOT_SSL_CERT=hub.pem`` would name another file)."""
    variables = {"CODEPILOT_DATA_DIR": str(settings.data_dir)}
    for pair, prefix in (
        (settings.tls, "CODEPILOT_SSL"),
        (settings.preview_tls, "CODEPILOT_PREVIEW_SSL"),
    ):
        if pair and pair.cert_variable == f"{prefix}_CERT":
            variables[f"{prefix}_CERT"], variables[f"{prefix}_KEY"] = str(pair.cert), str(pair.key)
    return variables


def up() -> None:
    try:
        settings = OneMachineSettings.from_env()
        problem = data_dir_problem(settings.data_dir)
        if problem:
            raise SettingsError(problem)
        isolation = IsolationSettings.from_env()
        passwords = decide(settings.data_dir, teachers=bool(settings.teachers))
    except (SettingsError, PasswordError) as error:
        sys.exit(f"codepilot: {error}")
    hub = running_hub(settings.data_dir)
    if hub is not None:
        print(login_banner(settings, passwords, verb="is already running"), flush=True)
        print(f"  The hub runs as pid {hub.pid}; `make down` stops it.\n", flush=True)
        return
    # JupyterHub removes its pid file when it stops; one left behind names a killed hub.
    killed = (settings.data_dir / HUB_PID_FILE).exists()
    proxy = leftover_proxy(settings.data_dir)
    if proxy is not None:  # its hub was killed: JupyterHub would replace it, as we do now
        print(f"codepilot: stopping the proxy a stopped hub left running (pid {proxy.pid})")
        asyncio.run(terminate([proxy], grace=5))
    problem = unreachable_install()
    if problem:
        sys.exit(f"codepilot: {problem}")
    # A killed hub's services end by themselves once they see it gone (servicelife).
    taken = ports_still_taken(settings, wait=SERVICES_ENDING_TIMEOUT if killed else 0)
    if taken:
        sys.exit("\n".join(f"codepilot: {line}" for line in taken))
    try:
        make_data_dir(settings.data_dir)
    except OSError as error:  # what the check cannot foresee (/proc, a read-only mount)
        sys.exit(f"codepilot: cannot create {error.filename}: {error.strerror}; {DATA_DIR_HINT}")
    keep(passwords)
    print(login_banner(settings, passwords), flush=True)
    is_root = os.geteuid() == 0
    print(isolation.banner(is_root), flush=True)
    if is_root and (note := machine_writeback_note()):
        print(note, flush=True)  # root sets it; a trial as a user needs no advice
    print(flush=True)
    os.chdir(settings.data_dir)
    env = {**os.environ, **handed_on(settings)}
    jupyterhub = Path(sys.executable).parent / "jupyterhub"
    os.execve(jupyterhub, [str(jupyterhub), "-f", str(HUB_CONFIG), *sys.argv[1:]], env)


def stop_all() -> None:
    """``make down``: stop the hub of the data dir, what it started and every server.

    Only the data dir counts: a setting the hub could not start with now (a certificate
    that expired since) never keeps what runs from stopping."""
    folder = data_dir(os.environ)
    if not folder.exists():
        print(f"codepilot: nothing was running (no data directory at {folder})")
        return
    report = asyncio.run(stop_everything(folder))
    print(f"codepilot: {report}", flush=True)


def main() -> None:
    if sys.argv[1:2] == ["stop-all"]:
        stop_all()
    else:
        up()


if __name__ == "__main__":
    main()

"""HTTPS settings of the one-machine hub (``CODEPILOT_SSL_CERT``/``_KEY`` and the
previews' own pair), checked before anything starts or is written: no hub here."""

import os
import subprocess
import sys

import pytest

from codepilot_spawner.onemachine.launcher import handed_on, login_banner
from codepilot_spawner.onemachine.passwords import decide
from codepilot_spawner.onemachine.settings import OneMachineSettings, SettingsError
from codepilot_spawner.onemachine.tls import covers

from .support.certificates import make_certificate
from .support.paths import REPO_ROOT

HUB = "hub.example.org"
PREVIEWS = "previews.example.net"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("tls")


@pytest.fixture(scope="module")
def full(folder):
    """The hub, its users' wildcard and the previews' wildcard in one certificate."""
    return make_certificate(folder, [HUB, f"*.{HUB}", f"*.{PREVIEWS}"], "full")


def class_env(pair, **more) -> dict:
    return {
        "CODEPILOT_PUBLIC_URL": f"https://{HUB}:8443",
        "CODEPILOT_PREVIEW_DOMAIN": PREVIEWS,
        "CODEPILOT_SSL_CERT": str(pair.cert),
        "CODEPILOT_SSL_KEY": str(pair.key),
        **more,
    }


def refusal(env) -> str:
    with pytest.raises(SettingsError) as error:
        OneMachineSettings.from_env(env)
    message = str(error.value)
    assert "\n" not in message  # one line
    return message


def test_one_pair_serves_the_hub_users_and_previews_over_https(full):
    settings = OneMachineSettings.from_env(class_env(full))
    assert settings.url == f"https://{HUB}:8443" == settings.subdomain_host
    assert settings.scheme == settings.preview_scheme == "https"
    assert settings.tls.cert == full.cert and settings.preview_tls == settings.tls


def test_without_a_public_url_the_hub_is_at_https_localhost(folder):
    local = make_certificate(folder, ["localhost", "*.localhost", "*.preview.localhost"], "lh")
    env = {"CODEPILOT_SSL_CERT": str(local.cert), "CODEPILOT_SSL_KEY": str(local.key)}
    settings = OneMachineSettings.from_env({**env, "CODEPILOT_PORT": "8443"})
    assert settings.url == "https://localhost:8443"
    plain = OneMachineSettings.from_env({})
    assert (plain.url, plain.tls, plain.preview_scheme) == ("http://localhost:8000", None, "http")


def test_previews_on_a_domain_of_their_own_take_their_own_pair(folder):
    hub = make_certificate(folder, [HUB, f"*.{HUB}"], "hub-only")
    previews = make_certificate(folder, [f"*.{PREVIEWS}"], "previews")
    message = refusal(class_env(hub))
    assert message.startswith(f"CODEPILOT_SSL_CERT={hub.cert} does not cover *.{PREVIEWS}")
    assert "CODEPILOT_PREVIEW_SSL_CERT" in message
    env = class_env(
        hub,
        CODEPILOT_PREVIEW_SSL_CERT=str(previews.cert),
        CODEPILOT_PREVIEW_SSL_KEY=str(previews.key),
    )
    settings = OneMachineSettings.from_env(env)
    assert (settings.tls.cert, settings.preview_tls.cert) == (hub.cert, previews.cert)
    banner = login_banner(settings, decide(folder / "data", env={}))
    assert f"HTTPS:    {hub.cert}" in banner and f"Previews: {previews.cert}" in banner


def test_a_certificate_must_cover_the_hub_and_its_users_hosts(folder):
    no_users = make_certificate(folder, [HUB, f"*.{PREVIEWS}"], "no-users")
    assert f"does not cover *.{HUB}, users' hosts" in refusal(class_env(no_users))
    # Without subdomains the hub's own name is enough.
    OneMachineSettings.from_env(class_env(no_users, CODEPILOT_SUBDOMAINS="false"))
    other_host = make_certificate(folder, ["hub.example.com", f"*.{HUB}", f"*.{PREVIEWS}"], "o")
    assert f"does not cover {HUB}, the hub's address" in refusal(class_env(other_host))
    nameless = make_certificate(folder, [], "nameless")
    assert "no names (no subjectAltName)" in refusal(class_env(nameless))


def test_a_wildcard_covers_one_label_only():
    names = ("hub.example.org", "*.hub.example.org")
    assert covers(names, "ada.hub.example.org") and covers(names, "HUB.example.org.")
    assert not covers(names, "a.b.hub.example.org")  # browsers match one label
    assert not covers(names, "*.example.org") and not covers(names, "example.org")
    assert covers(names, "*.hub.example.org")


def test_an_http_public_url_with_a_certificate_is_refused(full):
    message = refusal(class_env(full, CODEPILOT_PUBLIC_URL=f"http://{HUB}:8443"))
    assert message.startswith(f"CODEPILOT_PUBLIC_URL=http://{HUB}:8443 is not https")


def test_half_a_pair_is_refused(full):
    assert refusal({"CODEPILOT_SSL_CERT": str(full.cert)}).startswith(
        "CODEPILOT_SSL_CERT is set but CODEPILOT_SSL_KEY is not"
    )
    assert refusal({"CODEPILOT_SSL_KEY": str(full.key)}).startswith(
        "CODEPILOT_SSL_KEY is set but CODEPILOT_SSL_CERT is not"
    )
    previews_only = {
        "CODEPILOT_PREVIEW_SSL_CERT": str(full.cert),
        "CODEPILOT_PREVIEW_SSL_KEY": str(full.key),
    }
    assert refusal(previews_only).startswith(
        "CODEPILOT_PREVIEW_SSL_CERT is set but CODEPILOT_SSL_CERT is not"
    )
    assert refusal(class_env(full, CODEPILOT_PREVIEW_SSL_KEY=str(full.key))).startswith(
        "CODEPILOT_PREVIEW_SSL_KEY is set but CODEPILOT_PREVIEW_SSL_CERT is not"
    )


def test_files_that_cannot_serve_https_are_refused_by_name(folder, full):
    missing = folder / "missing.pem"
    assert refusal(class_env(full, CODEPILOT_SSL_CERT=str(missing))) == (
        f"CODEPILOT_SSL_CERT={missing} cannot be read: No such file or directory"
    )
    assert refusal(class_env(full, CODEPILOT_SSL_KEY=str(folder))).startswith(
        f"CODEPILOT_SSL_KEY={folder} cannot be read"
    )
    # Swapped: the key variable names the certificate, and the other way round.
    assert refusal(class_env(full, CODEPILOT_SSL_KEY=str(full.cert))).startswith(
        f"CODEPILOT_SSL_KEY={full.cert} holds no PEM private key"
    )
    assert refusal(class_env(full, CODEPILOT_SSL_CERT=str(full.key))).startswith(
        f"CODEPILOT_SSL_CERT={full.key} holds no PEM certificate"
    )


def test_a_key_of_another_certificate_is_refused(folder, full):
    other = make_certificate(folder, [HUB, f"*.{HUB}", f"*.{PREVIEWS}"], "other")
    message = refusal(class_env(full, CODEPILOT_SSL_KEY=str(other.key)))
    assert message == (
        f"CODEPILOT_SSL_KEY={other.key} is not the key of the certificate in "
        f"CODEPILOT_SSL_CERT={full.cert}"
    )


def test_a_key_behind_a_passphrase_is_refused(folder, full):
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(full.key.read_bytes(), None)
    locked = folder / "locked.key"
    locked.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    message = refusal(class_env(full, CODEPILOT_SSL_KEY=str(locked)))
    assert message.startswith(f"CODEPILOT_SSL_KEY={locked} is protected by a passphrase")


def test_an_expired_certificate_is_refused(folder):
    old = make_certificate(folder, [HUB, f"*.{HUB}", f"*.{PREVIEWS}"], "old", expired=True)
    assert "expired on" in refusal(class_env(old))


def launcher(*args, env: dict) -> subprocess.CompletedProcess:
    scrubbed = {k: v for k, v in os.environ.items() if not k.startswith("CODEPILOT_")}
    return subprocess.run(
        [sys.executable, "-m", "codepilot_spawner.onemachine.launcher", *args],
        env={**scrubbed, "PYTHONPATH": str(REPO_ROOT), **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.integration
def test_the_launcher_refuses_in_one_line_and_writes_nothing(tmp_path, folder):
    """As `make up` runs it: exit 1, one line on stderr, no data dir made."""
    hub_only = make_certificate(folder, [HUB, f"*.{HUB}"], "hub-only-2")
    data_dir = tmp_path / "data"
    done = launcher(env={"CODEPILOT_DATA_DIR": str(data_dir), **class_env(hub_only)})
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"codepilot: CODEPILOT_SSL_CERT={hub_only.cert} does not cover *.{PREVIEWS}, "
        "previews' hosts: it names hub.example.org, *.hub.example.org (or give previews "
        "their own with CODEPILOT_PREVIEW_SSL_CERT and CODEPILOT_PREVIEW_SSL_KEY); see the "
        "README, HTTPS"
    ]
    assert not data_dir.exists()


@pytest.mark.integration
def test_make_down_stops_a_hub_whose_certificate_has_expired_since(tmp_path, folder):
    """`make down` needs the data dir only: a certificate the hub could not start with
    now never keeps what runs from stopping."""
    old = make_certificate(folder, [HUB, f"*.{HUB}", f"*.{PREVIEWS}"], "old-2", expired=True)
    done = launcher("stop-all", env={"CODEPILOT_DATA_DIR": str(tmp_path), **class_env(old)})
    assert done.returncode == 0, done.stderr
    assert "stopped" in done.stdout or "nothing" in done.stdout, done.stdout


def test_relative_certificate_paths_reach_the_hub_as_absolute_ones(tmp_path, monkeypatch):
    """`make up` runs the hub in the data dir: relative names would point into it."""
    where = tmp_path / "where-make-runs"
    where.mkdir()
    hub = make_certificate(where, [HUB, f"*.{HUB}"], "hub")
    previews = make_certificate(where, [f"*.{PREVIEWS}"], "previews")
    monkeypatch.chdir(where)
    env = class_env(
        hub,
        CODEPILOT_DATA_DIR="data",
        CODEPILOT_SSL_CERT="hub.pem",
        CODEPILOT_SSL_KEY="hub.key",
        CODEPILOT_PREVIEW_SSL_CERT="previews.pem",
        CODEPILOT_PREVIEW_SSL_KEY="previews.key",
    )
    settings = OneMachineSettings.from_env(env)
    (where / "data").mkdir()
    monkeypatch.chdir(where / "data")
    with pytest.raises(SettingsError, match=r"CODEPILOT_SSL_CERT=hub\.pem cannot be read"):
        OneMachineSettings.for_hub({**env, "CODEPILOT_DATA_DIR": str(settings.data_dir)})
    for_hub = OneMachineSettings.for_hub({**env, **handed_on(settings)})
    assert (for_hub.tls.cert, for_hub.tls.key) == (hub.cert, hub.key)
    assert (for_hub.preview_tls.cert, for_hub.preview_tls.key) == (previews.cert, previews.key)
    plain = OneMachineSettings.from_env({"CODEPILOT_DATA_DIR": str(tmp_path)})
    assert handed_on(plain) == {"CODEPILOT_DATA_DIR": str(tmp_path)}


def test_a_key_every_user_may_read_is_refused(folder):
    """As root each server runs as a Unix user of its own: one that may read the key
    could pose as the hub (and every preview) to the class."""
    shared = make_certificate(folder, [HUB, f"*.{HUB}", f"*.{PREVIEWS}"], "shared")
    shared.key.chmod(0o644)
    assert refusal(class_env(shared)) == (
        f"CODEPILOT_SSL_KEY={shared.key} is readable by every user of this machine, the "
        f"students' servers included: chmod 600 {shared.key}"
    )
    shared.key.chmod(0o640)  # the hub's group only
    OneMachineSettings.from_env(class_env(shared))


# A whole dict on the command line is deprecated in traitlets 5, but the only form that
# passes a nested one (key=value items stay strings): this fails if it stops working.
@pytest.mark.filterwarnings("ignore:--tornado_settings=.*deprecated:DeprecationWarning")
def test_servers_get_their_xsrf_cookie_secure_on_their_own_path():
    """What the spawner passes a server when the hub serves https, as traitlets reads it
    for jupyter-server's ``ServerApp.tornado_settings`` (a Dict; the browser run sees the
    cookie Secure)."""
    from traitlets import Dict
    from traitlets.config import Application

    from codepilot_spawner.spawners.local import secure_xsrf_cookie_arg

    class ServerApp(Application):  # jupyter-server's trait, without its import time
        tornado_settings = Dict(config=True)

    app = ServerApp()
    app.parse_command_line([secure_xsrf_cookie_arg("/user/ada/web/")])
    assert app.tornado_settings == {
        "xsrf_cookie_kwargs": {"secure": True, "path": "/user/ada/web/"}
    }

"""The preview gateway's pure pieces: host labels, signed values, access rules, headers."""

import re
import time

import pytest

from codepilot_spawner.preview.access import grants_server_access
from codepilot_spawner.preview.gateway import (
    TokenChecks,
    app_cookies,
    safe_next,
    session_cookie_values,
)
from codepilot_spawner.preview.hosts import PreviewDomain, preview_label
from codepilot_spawner.preview.servers import PreviewTarget
from codepilot_spawner.preview.sessions import SessionBook
from codepilot_spawner.preview.tokens import InvalidToken, sign, verify

DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
NAMES = [
    ("a-b", ""),
    ("a--b", ""),
    ("a", "b"),
    ("a-b", "x"),
    ("Alice", ""),
    ("alice", ""),
    ("ålice", ""),
    ("alice", "default"),
    ("björk@example.org", "my project"),
    ("用户", ""),
    ("x" * 255, "y" * 255),
    ("", ""),
]


def test_labels_are_dns_safe_and_never_shared():
    labels = [preview_label(user, server) for user, server in NAMES]
    assert len(set(labels)) == len(labels)
    for label in labels:
        assert DNS_LABEL.match(label), label


def test_labels_are_stable_and_readable():
    assert preview_label("alice", "blog") == preview_label("alice", "blog")
    assert preview_label("alice", "blog").startswith("alice-blog-")


def test_domain_builds_and_reads_hosts():
    domain = PreviewDomain("preview.localhost", "http", 8002)
    label = preview_label("alice")
    assert domain.url("alice") == f"http://{label}.preview.localhost:8002/"
    assert domain.label_of(f"{label}.preview.localhost:8002") == label
    assert domain.label_of(f"{label.upper()}.Preview.Localhost") == label
    for foreign in ("preview.localhost", "a.b.preview.localhost", "evil.example", "x.localhost"):
        assert domain.label_of(foreign) is None
    assert PreviewDomain("p.example.org", "https", 443).origin("x") == "https://x.p.example.org"


def test_signed_values_refuse_forgery_expiry_and_reuse_elsewhere():
    secret, now = b"s" * 32, time.time()
    token = sign(secret, "ticket", {"label": "a", "start": "1", "exp": now + 60})
    assert verify(secret, "ticket", token, now, label="a", start="1")["label"] == "a"
    cases = {
        "bad signature": (b"t" * 32, "ticket", token, now, {}),
        "not a session": (secret, "session", token, now, {}),
        "expired": (secret, "ticket", token, now + 61, {}),
        "issued for another label": (secret, "ticket", token, now, {"label": "b"}),
        "issued for another start": (secret, "ticket", token, now, {"start": "2"}),
    }
    for reason, (key, kind, value, at, expected) in cases.items():
        with pytest.raises(InvalidToken, match=reason):
            verify(key, kind, value, at, **expected)
    with pytest.raises(InvalidToken):
        verify(secret, "ticket", token.replace(".", ".x", 1), now)


@pytest.mark.parametrize(
    "scopes, allowed",
    [
        (["access:servers"], True),
        (["access:servers!user=bob"], True),
        (["access:servers!server=bob/web"], True),
        (["access:servers!server=bob/"], False),
        (["access:servers!group=students"], True),
        (["access:servers!group=teachers"], False),
        (["access:servers!user=bobby"], False),
        (["read:servers", "admin:users"], False),
        ([], False),
    ],
)
def test_access_follows_jupyterhub_scopes_and_groups(scopes, allowed):
    assert grants_server_access(scopes, "bob", "web", ("students",)) is allowed


def test_identity_cookies_never_reach_the_app():
    header = "jupyterhub-user-bob=1; _xsrf=2; codepilot_preview_session=3; theme=dark; sid=4"
    assert app_cookies(header) == "theme=dark; sid=4"
    assert (
        session_cookie_values("a=1; codepilot_preview_session=x; codepilot_preview_session=y")[1]
        == "y"
    )


@pytest.mark.parametrize(
    "path, safe",
    [
        ("/a?b=1", "/a?b=1"),
        ("//evil.example/", "/"),
        ("/\\evil", "/"),
        ("http://x/", "/"),
        ("/\t/evil.example", "/"),  # browsers drop the tab: //evil.example
        ("/\n/evil.example", "/"),
        ("/%09/stays-local", "/%09/stays-local"),
    ],
)
def test_sign_in_returns_only_to_local_paths(path, safe):
    assert safe_next(path) == safe


def test_one_viewer_keeps_a_bounded_number_of_sessions_newest_kept():
    book = SessionBook(ttl=3600, per_viewer=5)
    target = PreviewTarget(user="ana", server="", label="ana-x", start="1", port=3000)
    ids = [book.open("bob", "t", (), target) for _ in range(50)]
    other = book.open("carl", "t", (), target)
    assert [sid for sid in ids if book.get(sid, target)] == ids[-5:]
    assert book.get(other, target) is not None and len(book.sessions) == 6


def test_refused_tokens_cost_nothing_and_new_ones_are_asked_about_at_a_bounded_rate():
    checks = TokenChecks(rate=10, burst=3, remember=60, size=2)
    assert [checks.may_ask() for _ in range(5)] == [True, True, True, False, False]
    checks.refused("a")
    assert checks.refused_lately("a") and not checks.refused_lately("b")
    checks.refused("b")
    checks.refused("c")  # over the size: the oldest is forgotten
    assert not checks.refused_lately("a") and checks.refused_lately("c")
    time.sleep(0.25)  # 10 a second: two more
    assert [checks.may_ask() for _ in range(3)] == [True, True, False]

"""Real-time collaboration on a real user server in sync mode against moto, with peers
that speak the Yjs protocol over the document's websocket (no browser): edits
converge, the save that follows is the converged text in S3 and on disk, typing costs
no S3 request per keystroke, a file changed on disk reaches every peer, the
collaboration's own files never reach S3, and a hostile peer neither joins from another
origin nor crashes or bloats the server. ``CODEPILOT_COLLABORATION=false`` leaves the
routes and its JupyterLab plugins out.
"""

import asyncio
import json
import re

import pytest
import requests
import websockets

from server_extension.collaboration import LAB_PACKAGES, MAX_UPDATE_BYTES

from .support.hubtools import login, start_hub, wait_until
from .support.jupyterserver import synced_server_fixture
from .support.s3server import s3_server_fixture
from .support.ydocpeer import DocumentPeer, open_session, room_url

pytestmark = pytest.mark.integration

BUCKET = "pairing"
PREFIX = "cp"
USER = "maya"
KEYS = f"{PREFIX}/users/{USER}/default/"

s3 = s3_server_fixture(buckets=(BUCKET,))
server = synced_server_fixture(BUCKET, PREFIX, USER)


def s3_text(s3, path: str) -> str | None:
    body = s3.read(BUCKET, KEYS + path)
    return None if body is None else body.decode()


async def until(condition, what: str, seconds: float = 60) -> None:
    """``wait_until`` off the event loop, which keeps carrying the peers' messages."""
    await asyncio.to_thread(wait_until, condition, seconds, 0.2, what)


async def join(server, path: str) -> DocumentPeer:
    return await DocumentPeer.join(server.url, server.token, path)


async def test_two_peers_converge_and_the_saved_file_is_the_converged_text(server, s3):
    assert server.put_text("app.py", "print('hi')\n").status_code == 201
    student, teacher = await join(server, "app.py"), await join(server, "app.py")
    try:
        await student.wait_for(lambda text: text == "print('hi')\n")
        await teacher.wait_for(lambda text: text == "print('hi')\n")
        # Both type at the same place of the same line before either hears of the other.
        student.insert(6, "STUDENT")
        teacher.insert(6, "TEACHER")
        both = lambda text: "STUDENT" in text and "TEACHER" in text  # noqa: E731
        converged = await student.wait_for(both)
        assert await teacher.wait_for(lambda text: text == converged) == converged
        # The room saves through the workspace contents manager: disk and S3.
        await until(lambda: s3_text(s3, "app.py") == converged, "the save to S3")
        assert (server.root / "app.py").read_text() == converged

        # A terminal's edit (sed -i writes a new file) reaches both editors.
        edited = converged.replace("print", "log")
        replaced = server.root / "app.py.new"
        replaced.write_text(edited)
        replaced.replace(server.root / "app.py")
        await student.wait_for(lambda text: text == edited)
        await teacher.wait_for(lambda text: text == edited)
    finally:
        await student.close()
        await teacher.close()


async def test_typing_costs_no_s3_request_per_keystroke(server, s3):
    assert server.put_text("notes.md", "").status_code == 201
    await until(lambda: s3_text(s3, "notes.md") == "", "the first save")
    peer = await join(server, "notes.md")
    keystrokes = 100
    try:
        await peer.wait_for(lambda text: text == "")
        with s3.recording() as seen:
            for index in range(keystrokes):
                peer.insert(index, "k")
                await asyncio.sleep(0.02)  # a fast typist's pace
            typed = "k" * keystrokes
            await until(lambda: s3_text(s3, "notes.md") == typed, "the save to S3")
            # The server's requests, through the relay (the test reads moto directly).
            requests_made = [entry for entry in seen() if entry[1].startswith(s3.endpoint_url)]
    finally:
        await peer.close()
    print(f"{keystrokes} keystrokes: {len(requests_made)} S3 requests", requests_made)
    assert 0 < len(requests_made) <= keystrokes // 10, requests_made


def test_the_collaboration_state_stays_out_of_the_workspace_files_and_s3(server, s3):
    state = server.root / ".codepilot" / "collaboration"
    wait_until(lambda: (state / "ystore.db").exists(), 30, 0.2, "the document store")
    assert (state / "file_ids.db").exists()
    assert not (server.root / ".jupyter_ystore.db").exists()
    assert not (server.root / ".jupyter").exists()
    keys = s3.keys(BUCKET, KEYS)
    assert keys, "the workspace was synced"
    assert not [key for key in keys if ".codepilot/" in key or "ystore" in key], keys


def logged_in_cookies(server) -> str:
    """The ``Cookie`` header of a browser logged in to ``server`` (its login form)."""
    browser = requests.Session()
    browser.get(f"{server.url}/login", timeout=30)
    form = {"password": server.token, "_xsrf": browser.cookies["_xsrf"]}
    browser.post(f"{server.url}/login", data=form, timeout=30).raise_for_status()
    return "; ".join(f"{name}={value}" for name, value in browser.cookies.items())


async def test_a_room_refuses_a_foreign_origin_and_an_unauthenticated_peer(server):
    assert server.put_text("secret.py", "x = 1\n").status_code == 201
    session = open_session(server.url, server.token, "secret.py")
    with_token = room_url(server.url, server.token, session)
    # A browser's cookies, without the token a page of another origin cannot know.
    with_cookies = with_token.split("&token=")[0]
    cookies = {"Cookie": await asyncio.to_thread(logged_in_cookies, server)}
    async with websockets.connect(
        with_cookies, origin=server.url, additional_headers=cookies
    ) as same_origin:
        await same_origin.send(bytes([0, 0, 0]))  # a sync step 1 of an empty document
        assert (await same_origin.recv())[0] == 0
    for origin in ("http://evil.localhost:8000", "null"):
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(with_cookies, origin=origin, additional_headers=cookies)
        assert refused.value.response.status_code == 403
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(with_token.replace(server.token, "guessed"))
    assert refused.value.response.status_code in (401, 403)
    response = await asyncio.to_thread(
        requests.put,
        f"{server.url}/api/collaboration/session/secret.py",
        json={"format": "text", "type": "file"},
        timeout=30,
    )
    assert response.status_code in (401, 403)


async def test_huge_and_malformed_updates_neither_crash_nor_bloat_the_server(server):
    assert server.put_text("target.py", "safe\n").status_code == 201
    session = open_session(server.url, server.token, "target.py")
    url = room_url(server.url, server.token, session)
    async with websockets.connect(url, max_size=None) as attacker:
        # A sync update whose payload is not a Yjs update at all.
        await attacker.send(bytes([0, 2, 5]) + b"\xff" * 5)
        await attacker.send(b"\x00\x07garbage")
    huge = await websockets.connect(url, max_size=None, write_limit=2**27)
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await huge.send(bytes([0, 2]) + b"\x00" * (MAX_UPDATE_BYTES + 1))
        await huge.recv()
        await huge.recv()
    assert closed.value.rcvd is None or closed.value.rcvd.code == 1009
    # The room still works for an honest peer, with the file as it was.
    peer = await join(server, "target.py")
    try:
        await peer.wait_for(lambda text: text == "safe\n")
        peer.insert(0, "# ok\n")
        await until(lambda: (server.root / "target.py").read_text() == "# ok\nsafe\n", "save")
    finally:
        await peer.close()
    assert server.api("GET", "/api/status").status_code == 200


def lab_page_config(hub, user: str) -> dict:
    """The page config JupyterLab of ``user``'s server starts from."""
    page = hub.session.get(
        f"{hub.server_url(user)}lab", headers={"Authorization": f"token {hub.token}"}, timeout=30
    )
    page.raise_for_status()
    found = re.search(r'id="jupyter-config-data"[^>]*>\s*(\{.*?\})\s*</script>', page.text, re.S)
    return json.loads(found.group(1))


def test_collaboration_off_leaves_its_routes_and_lab_plugins_out():
    """Off on a hub: the hub passes the setting on, JupyterLab loads none of its plugins
    (after JupyterHub's own page config hook), its routes and its state folder are absent."""
    hub = start_hub(env={"CODEPILOT_COLLABORATION": "false"})
    try:
        login(hub, USER)
        hub.start_server(USER)
        config = lab_page_config(hub, USER)
        loaded = {extension["name"] for extension in config["federated_extensions"]}
        assert not loaded & set(LAB_PACKAGES), loaded
        assert set(LAB_PACKAGES) <= set(config["disabledExtensions"])
        assert config["disableRTC"] is True
        assert "@codepilot/lab" in loaded
        response = hub.session.put(
            f"{hub.server_url(USER)}api/collaboration/session/a.py",
            headers={"Authorization": f"token {hub.token}"},
            json={"format": "text", "type": "file"},
            timeout=30,
        )
        assert response.status_code == 404
        workspace = hub.data_dir / "workspaces" / USER / "default"
        assert workspace.is_dir() and not (workspace / ".codepilot" / "collaboration").exists()
        assert "real-time collaboration is off" in hub.log()
    finally:
        hub.stop()

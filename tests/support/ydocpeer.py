"""A collaboration peer without a browser: the Yjs sync protocol over a document's
websocket (jupyter-server-ydoc's ``/api/collaboration/room/<room>``), with pycrdt.

    peer = await DocumentPeer.join(server_url, token, "app.py")
    peer.insert(0, "x")             # sent to the room at once
    await peer.wait_for(lambda text: "x" in text)
    await peer.close()
"""

import asyncio
import contextlib
import json
import time
from urllib.parse import quote

import requests
import websockets
from pycrdt import (
    Doc,
    Text,
    YMessageType,
    create_sync_message,
    create_update_message,
    handle_sync_message,
)


def open_session(server_url: str, token: str, path: str) -> dict:
    """The document session of a text file: its ``fileId`` and the server's ``sessionId``."""
    response = requests.put(
        f"{server_url}/api/collaboration/session/{quote(path)}",
        data=json.dumps({"format": "text", "type": "file"}),
        headers={"Authorization": f"token {token}"},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()


def room_url(server_url: str, token: str, session: dict) -> str:
    room = f"text:file:{session['fileId']}"
    base = server_url.replace("http://", "ws://", 1)
    return f"{base}/api/collaboration/room/{room}?sessionId={session['sessionId']}&token={token}"


class DocumentPeer:
    """One editor of a text file's shared document."""

    def __init__(self, websocket):
        self.websocket = websocket
        self.doc = Doc()
        self.source = self.doc.get("source", type=Text)
        self.changed = asyncio.Event()
        self._sending = True
        self.doc.observe(self._send_own_update)
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def join(cls, server_url: str, token: str, path: str, **connect) -> "DocumentPeer":
        session = await asyncio.to_thread(open_session, server_url, token, path)
        websocket = await websockets.connect(
            room_url(server_url, token, session), max_size=None, **connect
        )
        peer = cls(websocket)
        await websocket.send(create_sync_message(peer.doc))
        return peer

    def _send_own_update(self, event) -> None:
        if self._sending:
            message = create_update_message(event.update)
            asyncio.get_running_loop().create_task(self.websocket.send(message))

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for message in self.websocket:
                if message[0] != YMessageType.SYNC:
                    continue
                self._sending = False  # the room's updates are not sent back
                try:
                    reply = handle_sync_message(message[1:], self.doc)
                finally:
                    self._sending = True
                if reply is not None:
                    await self.websocket.send(reply)
                self.changed.set()

    @property
    def text(self) -> str:
        return str(self.source)

    def insert(self, index: int, text: str) -> None:
        self.source.insert(index, text)

    async def wait_for(self, condition, seconds: float = 30) -> str:
        """Wait until ``condition(text)`` holds, ``seconds`` at most; returns the text."""
        deadline = time.monotonic() + seconds
        while not condition(self.text):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the shared text never matched; it is {self.text!r}")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(left, 0.5))
        return self.text

    async def close(self) -> None:
        await self.websocket.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader

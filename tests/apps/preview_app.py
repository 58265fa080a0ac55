"""A user's web app for preview tests: HTTP pages, a base-path redirect and a websocket echo.

Run as ``python preview_app.py`` from a workspace terminal: it listens on $PORT and, like
Vite, serves under $CODEPILOT_PREVIEW_URL when APP_BASE=1, redirecting ``/`` there.
"""

import asyncio
import http
import os

from websockets.asyncio.server import serve
from websockets.datastructures import Headers
from websockets.http11 import Response


def page(status, body: str, headers=()):
    return Response(status.value, status.phrase, Headers([*headers]), body.encode())


def handle_http(connection, request):
    if request.headers.get("Upgrade", "").lower() == "websocket":
        return None  # go on with the websocket handshake
    base = os.environ["CODEPILOT_PREVIEW_URL"] if os.environ.get("APP_BASE") else "/"
    path = request.path.split("?")[0]
    if path.startswith(base):
        return page(http.HTTPStatus.OK, f"app page {path[len(base) :] or 'index'} under {base}")
    if path == "/":
        return page(http.HTTPStatus.FOUND, "", [("Location", base)])
    return page(http.HTTPStatus.NOT_FOUND, f"no {path}")


async def echo(websocket):
    async for message in websocket:
        await websocket.send(f"echo: {message}")


async def main():
    async with serve(echo, "127.0.0.1", int(os.environ["PORT"]), process_request=handle_http):
        print("preview app listening", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main())

"""A user's web app for preview tests: pages, what it was sent, and a websocket echo.

Run as ``python preview_app.py`` from a workspace terminal: it listens on 127.0.0.1:$PORT
(as Vite does by default). ``/headers`` answers the request's headers as JSON, so tests
see exactly what reached the app; ``/set-cookie`` sets a cookie of the app's own,
``/toss-cookie`` one for the whole preview domain.
"""

import asyncio
import http
import json
import os

from websockets.asyncio.server import serve
from websockets.datastructures import Headers
from websockets.http11 import Response


def page(status, body: str, headers=()):
    return Response(status.value, status.phrase, Headers([*headers]), body.encode())


def handle_http(connection, request):
    if request.headers.get("Upgrade", "").lower() == "websocket":
        return None  # go on with the websocket handshake
    path = request.path.split("?")[0]
    if path == "/headers":
        sent = [[name, value] for name, value in request.headers.raw_items()]
        return page(http.HTTPStatus.OK, json.dumps(sent), [("Content-Type", "application/json")])
    if path == "/set-cookie":
        return page(http.HTTPStatus.OK, "cookie set", [("Set-Cookie", "app_session=42; Path=/")])
    if path == "/toss-cookie":  # a cookie for every preview under the domain
        tossed = "tossed=1; Domain=preview.localhost; Path=/; HttpOnly"
        return page(http.HTTPStatus.OK, "cookie tossed", [("Set-Cookie", tossed)])
    return page(http.HTTPStatus.OK, f"app page {path}")


async def echo(websocket):
    async for message in websocket:
        await websocket.send(f"echo: {message}")


async def main():
    async with serve(echo, "127.0.0.1", int(os.environ["PORT"]), process_request=handle_http):
        print("preview app listening", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main())

"""A real S3 API on loopback for tests and benchmarks: moto in server mode.

``start_s3_server()`` runs ``python -m moto.server`` on a free 127.0.0.1 port and, by
default, a small TCP relay in front of it. The relay is what simulates an outage: while
``outage()`` is active it drops every open connection and closes new ones at once, so
clients see S3 as unreachable, yet moto keeps running with all its objects in memory;
while ``hang()`` is active it accepts and reads but forwards nothing, as a paused server
or a black-holed route does.

    s3 = start_s3_server()
    s3.create_bucket("workspaces")
    client = s3.client()          # boto3, speaking HTTP to s3.endpoint_url
    with s3.outage():
        ...                       # S3 unreachable
    s3.stop()

For pytest, ``s3_server_fixture()`` makes a module- or session-scoped fixture of it.
"""

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field

import boto3
import botocore.config
import pytest
import requests

from .hubtools import free_port, wait_answering

# moto accepts any credentials; fixed ones keep the standard AWS chain from looking further.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class TcpRelay:
    """Forwards 127.0.0.1:<port> to a target port; can refuse service without losing it."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=256)
        self.port = self._listener.getsockname()[1]
        self._refusing = threading.Event()
        self._flowing = threading.Event()
        self._flowing.set()
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept_loop, daemon=True, name="s3-relay").start()

    def _accept_loop(self):
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._refusing.is_set():
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                _reset(client)
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._open.update((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket):
        try:
            while True:
                data = source.recv(262144)
                if not data:
                    break
                self._flowing.wait()  # held while hanging, then delivered late
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with self._lock:
                    self._open.discard(sock)
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def refuse(self):
        """Drop open connections and reset new ones until ``serve()``."""
        self._refusing.set()
        with self._lock:
            open_sockets = list(self._open)
            self._open.clear()
        for sock in open_sockets:
            # A pump thread blocked in recv() keeps a closed socket alive (no RST goes
            # out, the client waits for its read timeout); shutdown() ends it at once.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            _reset(sock)

    def hang(self):
        """Forward nothing, in either direction, until ``serve()``; drop nothing."""
        self._flowing.clear()

    def serve(self):
        self._refusing.clear()
        self._flowing.set()

    def close(self):
        self._closed = True
        self._flowing.set()
        self.refuse()
        self._listener.close()


def _reset(sock: socket.socket):
    """Close with RST, as a host whose service went away does."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    with contextlib.suppress(OSError):
        sock.close()


@dataclass
class S3Server:
    """A running moto server; ``endpoint_url`` goes through the relay when there is one."""

    endpoint_url: str
    moto_url: str
    process: subprocess.Popen
    relay: TcpRelay | None = None
    buckets: list[str] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        """Environment for a process that talks to this server through the AWS chain."""
        return {**CREDENTIALS, "AWS_ENDPOINT_URL_S3": self.endpoint_url}

    def client(self, direct: bool = False):
        """A boto3 S3 client; ``direct`` bypasses the relay (works during an outage)."""
        return boto3.client(
            "s3",
            endpoint_url=self.moto_url if direct else self.endpoint_url,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
            config=botocore.config.Config(max_pool_connections=32),
        )

    def create_bucket(self, name: str) -> str:
        if len(name) < 3:
            raise ValueError(f"S3 bucket names need at least 3 characters: {name!r}")
        self.client(direct=True).create_bucket(Bucket=name)
        self.buckets.append(name)
        return name

    def objects(self, bucket: str, prefix: str = "") -> dict[str, bytes]:
        """Every object under ``prefix``, by key (read past the relay)."""
        client = self.client(direct=True)
        found = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                body = self.read(bucket, item["Key"])
                if body is not None:  # not deleted since the listing
                    found[item["Key"]] = body
        return found

    def read(self, bucket: str, key: str) -> bytes | None:
        """The object's bytes, or None when there is no such object."""
        client = self.client(direct=True)
        try:
            return client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except client.exceptions.NoSuchKey:
            return None

    def keys(self, bucket: str, prefix: str = "") -> set[str]:
        client = self.client(direct=True)
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return {item["Key"] for page in pages for item in page.get("Contents", [])}

    @contextlib.contextmanager
    def recording(self):
        """Inside the block, moto records each request it serves; yields a function that
        returns them so far, as ``(method, path)`` pairs (moto's own recorder)."""
        api = f"{self.moto_url}/moto-api/recorder"
        requests.post(f"{api}/reset-recording", timeout=10).raise_for_status()
        requests.post(f"{api}/start-recording", timeout=10).raise_for_status()

        def seen() -> list[tuple[str, str]]:
            text = requests.get(f"{api}/download-recording", timeout=10).text
            entries = [json.loads(line) for line in text.splitlines() if line.strip()]
            return [(entry["method"], entry["url"]) for entry in entries]

        try:
            yield seen
        finally:
            requests.post(f"{api}/stop-recording", timeout=10)

    def outage(self):
        """S3 unreachable through ``endpoint_url`` inside the block; data survives."""
        return self._relay_mode("refuse")

    def hang(self):
        """S3 answers nothing through ``endpoint_url`` inside the block (no error either)."""
        return self._relay_mode("hang")

    @contextlib.contextmanager
    def _relay_mode(self, mode: str):
        """The relay in ``mode`` (``refuse``, ``hang``) inside the block, then serving."""
        if self.relay is None:
            raise RuntimeError(f"start_s3_server(relay=True) is needed to {mode}")
        getattr(self.relay, mode)()
        try:
            yield self
        finally:
            self.relay.serve()

    def stop(self):
        if self.relay is not None:
            self.relay.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def recording_file() -> str:
    handle, path = tempfile.mkstemp(prefix="codepilot-moto-recording-")
    os.close(handle)
    return path


def start_s3_server(relay: bool = True, timeout: float = 30) -> S3Server:
    """Start moto's S3 server on a free loopback port and wait until it answers."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        # Requests recorded by ``recording()`` go to a file of its own, not the cwd.
        env={**os.environ, **CREDENTIALS, "MOTO_RECORDER_FILEPATH": recording_file()},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    moto_url = f"http://127.0.0.1:{port}"

    try:
        wait_answering(
            process,
            lambda: requests.get(moto_url, timeout=2).status_code < 500,
            timeout,
            f"the moto server on {moto_url}",
        )
    except TimeoutError:
        process.kill()
        raise
    tcp_relay = TcpRelay(port) if relay else None
    endpoint_url = f"http://127.0.0.1:{tcp_relay.port}" if tcp_relay else moto_url
    return S3Server(endpoint_url, moto_url, process, tcp_relay)


def s3_server_fixture(scope: str = "module", relay: bool = True, buckets: tuple[str, ...] = ()):
    """A pytest fixture that yields a running ``S3Server`` with ``buckets`` made:
    ``s3 = s3_server_fixture(buckets=("workspaces",))``."""

    @pytest.fixture(scope=scope)
    def s3_server():
        server = start_s3_server(relay=relay)
        for bucket in buckets:
            server.create_bucket(bucket)
        yield server
        server.stop()

    return s3_server

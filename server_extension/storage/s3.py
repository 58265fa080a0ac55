"""Asynchronous S3 object I/O for workspaces, on aiobotocore.

Every call awaits the network and reads or writes local files in worker threads, so a
server's event loop keeps answering while megabytes move. Large files go up in
concurrent multipart parts. Errors come out as ``S3Error`` with a message that names S3,
the endpoint and the object, because a user reads them in the editor.
"""

import asyncio
import base64
import contextlib
import hashlib
import os
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import aiobotocore.session
import aiohttp
import botocore.exceptions
import botocore.parsers
from aiobotocore.config import AioConfig

from ..credential_refresher import CredentialsUnavailable, use_broker_credentials
from .botodata import use_shared_data
from .endpoint import configured_endpoint, plain_http
from .location import WorkspaceLocation

MiB = 1024 * 1024

# Errors that mean S3 could not be reached, as opposed to S3 answering "no".
UNREACHABLE_ERRORS = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectionClosedError,
    botocore.exceptions.ConnectTimeoutError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.HTTPClientError,
    aiohttp.ClientError,
    ConnectionError,
    asyncio.TimeoutError,
)


class S3Error(Exception):
    """An S3 operation failed; ``unreachable`` says whether S3 could be reached at all."""

    def __init__(self, message: str, unreachable: bool = False):
        super().__init__(message)
        self.unreachable = unreachable


@dataclass(frozen=True)
class RemoteObject:
    size: int
    etag: str


def fast_timestamp(value):
    """botocore's timestamp parser, with S3's ISO 8601 form parsed by ``fromisoformat``.

    botocore parses every timestamp with dateutil: for a listing of 2,000 objects that is
    0.35 s of CPU, most of a restore that finds nothing to do. Same result, tz-aware.
    """
    if isinstance(value, str) and "T" in value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed
    return botocore.parsers.DEFAULT_TIMESTAMP_PARSER(value)


def _etag(value: str) -> str:
    return value.strip('"')


def md5_etag(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def file_etag(path: Path, part_size: int, parts: int = 1) -> str:
    """The ETag S3 gives ``path`` uploaded whole (``parts == 1``) or in parts of part_size."""
    if parts <= 1:
        digest = hashlib.md5(usedforsecurity=False)
        with open(path, "rb") as file:
            while block := file.read(MiB):
                digest.update(block)
        return digest.hexdigest()
    part_digests = b""
    count = 0
    with open(path, "rb") as file:
        while block := file.read(part_size):
            part_digests += hashlib.md5(block, usedforsecurity=False).digest()
            count += 1
    return f"{md5_etag(part_digests)}-{count}"


def _read_range(path: Path, offset: int, size: int) -> tuple[bytearray, str]:
    """``size`` bytes of ``path`` from ``offset`` and their Content-MD5 header value.

    A bytearray, not bytes: botocore wraps a bytes body in a BytesIO, whose buffer aiohttp
    then copies whole on the event loop (megabytes per part); a bytearray goes out as is.
    """
    data = bytearray(size)
    with open(path, "rb") as file:
        file.seek(offset)
        read = file.readinto(data)
    del data[read:]
    return data, _content_md5(data)


def _replace(scratch: Path, target: Path) -> os.stat_result:
    os.replace(scratch, target)
    return os.stat(target)


def _write_file(scratch: Path, target: Path, data: bytes) -> os.stat_result:
    with open(scratch, "wb") as file:
        file.write(data)
    return _replace(scratch, target)


def _content_md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


class S3Store:
    """The bucket of ``location`` through one pooled aiobotocore client; use as
    ``async with S3Store(location)``.

    The location's endpoint and region may be empty: then the standard AWS configuration
    (``AWS_ENDPOINT_URL_S3``, ``AWS_REGION``, profiles) decides, as it does credentials.
    With its ``credentials_url`` (the hub's credential broker), credentials come from
    there and are renewed before they expire. The store reads no key prefix: one store
    serves every workspace in its bucket.
    """

    def __init__(
        self,
        location: WorkspaceLocation,
        *,
        max_connections: int = 64,
        part_size: int = 8 * MiB,
        multipart_threshold: int = 8 * MiB,
        connect_timeout: float = 5,
        read_timeout: float = 60,
        max_attempts: int = 2,
    ):
        self.location = location
        # Resolved here as botocore would resolve it, and always passed explicitly: the
        # client then talks to exactly this endpoint, so ``verify`` below can only be
        # off for a plain-HTTP one.
        self.endpoint_url = configured_endpoint(location.endpoint_url) or None
        self.part_size = part_size
        self.multipart_threshold = multipart_threshold
        self.max_connections = max_connections
        self._config_options = dict(
            max_pool_connections=max_connections,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": max_attempts, "mode": "standard"},
            # botocore would hash every body on the event loop (SHA-256 over plain HTTP,
            # CRC32 otherwise), stalling it for megabytes. Bodies go with a Content-MD5
            # computed in a worker thread instead, which S3 checks just the same.
            s3={"payload_signing_enabled": False},
            request_checksum_calculation="when_required",
        )
        self._client = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._opening = asyncio.Lock()
        # A few parts at a time: enough to fill the link, few enough to bound memory.
        self._part_slots = asyncio.Semaphore(4)

    @property
    def bucket(self) -> str:
        return self.location.bucket

    @property
    def endpoint(self) -> str:
        """The endpoint this store talks to, as a manifest records it."""
        return self.endpoint_url or "AWS"

    @property
    def where(self) -> str:
        return f"s3://{self.bucket} at {self.endpoint}"

    async def __aenter__(self):
        await self.client()
        return self

    async def __aexit__(self, *exc_info):
        await self.close()

    async def client(self):
        async with self._opening, self._errors("connect"):
            if self._client is None:
                stack = contextlib.AsyncExitStack()
                session = aiobotocore.session.get_session()
                use_shared_data(session)
                use_broker_credentials(session, self.location.credentials_url)
                session.get_component("response_parser_factory").set_parser_defaults(
                    timestamp_parser=fast_timestamp
                )
                config = AioConfig(
                    **self._config_options,
                    # aiohttp would resolve names with aiodns, installed with JupyterHub,
                    # whose pycares keeps a non-daemon thread that stops the server's
                    # process from exiting after shutdown. getaddrinfo in a thread has none.
                    connector_args={"resolver": aiohttp.ThreadedResolver()},
                )
                self._client = await stack.enter_async_context(
                    session.create_client(
                        "s3",
                        endpoint_url=self.endpoint_url,
                        region_name=self.location.region or None,
                        config=config,
                        # Over plain HTTP there is no certificate to verify, and loading
                        # the CA store for nothing cost every restore ~25 ms.
                        verify=False if plain_http(self.endpoint_url or "") else None,
                    )
                )
                self._stack = stack
            return self._client

    async def close(self):
        if self._stack is not None:
            stack, self._stack, self._client = self._stack, None, None
            await stack.aclose()

    @contextlib.asynccontextmanager
    async def _errors(self, action: str):
        """Turn botocore/aiohttp failures into an ``S3Error`` that says what failed."""
        try:
            yield
        except S3Error:
            raise
        except CredentialsUnavailable as error:
            raise S3Error(
                f"S3 credentials are unavailable ({self.where}): could not {action}: {error}",
                unreachable=True,
            ) from error
        except UNREACHABLE_ERRORS as error:
            raise S3Error(
                f"S3 is unreachable ({self.where}): could not {action}: {error}",
                unreachable=True,
            ) from error
        except botocore.exceptions.ClientError as error:
            info = error.response.get("Error", {})
            raise S3Error(
                f"S3 refused to {action} ({self.where}): "
                f"{info.get('Code', 'error')}: {info.get('Message', error)}"
            ) from error
        except botocore.exceptions.BotoCoreError as error:
            raise S3Error(f"S3 error ({self.where}): could not {action}: {error}") from error

    # --- reading -----------------------------------------------------------------------

    async def list(self, prefix: str) -> dict[str, RemoteObject]:
        """Every object under ``prefix``, by key."""
        client = await self.client()
        request = {"Bucket": self.bucket, "Prefix": prefix}
        found = {}
        async with self._errors(f"list {prefix!r}"):
            # Page by page by hand: botocore's paginator loads its model file first.
            while True:
                page = await client.list_objects_v2(**request)
                for item in page.get("Contents", ()):
                    found[item["Key"]] = RemoteObject(item["Size"], _etag(item["ETag"]))
                if not page.get("IsTruncated"):
                    return found
                request["ContinuationToken"] = page["NextContinuationToken"]

    async def download_file(
        self, key: str, target: Path, scratch_dir: Path
    ) -> tuple[str, os.stat_result]:
        """Write the object to ``target`` atomically (via ``scratch_dir``).

        Returns its ETag and the written file's stat. Small objects are written in one
        worker-thread call; large ones stream through in 1 MiB blocks.
        """
        client = await self.client()
        scratch = scratch_dir / f"download-{uuid.uuid4().hex}"
        try:
            async with self._errors(f"download {key!r}"):
                response = await client.get_object(Bucket=self.bucket, Key=key)
                etag = _etag(response["ETag"])
                async with response["Body"] as body:
                    if response["ContentLength"] <= MiB:
                        data = await body.read()
                        return etag, await asyncio.to_thread(_write_file, scratch, target, data)
                    file = await asyncio.to_thread(open, scratch, "wb")
                    try:
                        while chunk := await body.read(MiB):
                            await asyncio.to_thread(file.write, chunk)
                    finally:
                        await asyncio.to_thread(file.close)
            return etag, await asyncio.to_thread(_replace, scratch, target)
        finally:
            if scratch.exists():
                scratch.unlink()

    async def chunks(self, key: str, size: int = MiB):
        """The object's bytes as they arrive, ``size`` at most at a time (an async iterator)."""
        client = await self.client()
        async with self._errors(f"download {key!r}"):
            response = await client.get_object(Bucket=self.bucket, Key=key)
            async with response["Body"] as body:
                while chunk := await body.read(size):
                    yield chunk

    async def read_bytes(self, key: str) -> bytes:
        client = await self.client()
        async with self._errors(f"download {key!r}"):
            response = await client.get_object(Bucket=self.bucket, Key=key)
            async with response["Body"] as body:
                return await body.read()

    # --- writing -----------------------------------------------------------------------

    async def put_bytes(
        self, key: str, data: bytes | bytearray, content_md5: str | None = None
    ) -> str:
        client = await self.client()
        if content_md5 is None:
            content_md5 = (
                _content_md5(data)
                if len(data) < MiB
                else await asyncio.to_thread(_content_md5, data)
            )
        async with self._errors(f"upload {key!r}"):
            response = await client.put_object(
                Bucket=self.bucket, Key=key, Body=data, ContentMD5=content_md5
            )
        return _etag(response["ETag"])

    async def upload_file(self, path: Path, key: str, size: int) -> str:
        """Upload ``size`` bytes of ``path``; multipart above the threshold. Returns the ETag."""
        if size < self.multipart_threshold:
            data, content_md5 = await asyncio.to_thread(_read_range, path, 0, size)
            return await self.put_bytes(key, data, content_md5)
        return await self._upload_multipart(path, key, size)

    async def _upload_multipart(self, path: Path, key: str, size: int) -> str:
        client = await self.client()
        async with self._errors(f"upload {key!r}"):
            created = await client.create_multipart_upload(Bucket=self.bucket, Key=key)
        upload_id = created["UploadId"]

        async def upload_part(number: int, offset: int) -> dict:
            async with self._part_slots:
                data, content_md5 = await asyncio.to_thread(
                    _read_range, path, offset, self.part_size
                )
                async with self._errors(f"upload part {number} of {key!r}"):
                    response = await client.upload_part(
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=data,
                        ContentMD5=content_md5,
                    )
                return {"PartNumber": number, "ETag": response["ETag"]}

        offsets = range(0, size, self.part_size)
        try:
            parts = await asyncio.gather(
                *(upload_part(number, offset) for number, offset in enumerate(offsets, 1))
            )
            async with self._errors(f"complete the upload of {key!r}"):
                response = await client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": list(parts)},
                )
        except BaseException:
            # Parts left behind cost storage until a lifecycle rule removes them.
            with contextlib.suppress(Exception):
                await client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise
        return _etag(response["ETag"])

    async def copy(self, source_key: str, key: str) -> str:
        client = await self.client()
        async with self._errors(f"copy {source_key!r} to {key!r}"):
            response = await client.copy_object(
                Bucket=self.bucket, Key=key, CopySource={"Bucket": self.bucket, "Key": source_key}
            )
        return _etag(response["CopyObjectResult"]["ETag"])

    async def delete(self, keys) -> None:
        """Delete ``keys`` (missing ones are fine), 1,000 per request."""
        keys = sorted(set(keys))
        client = await self.client()
        for start in range(0, len(keys), 1000):
            batch = keys[start : start + 1000]
            async with self._errors(f"delete {batch[0]!r}" + (" and more" if batch[1:] else "")):
                response = await client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
                )
            if response.get("Errors"):
                first = response["Errors"][0]
                raise S3Error(
                    f"S3 refused to delete {first.get('Key')!r} ({self.where}): "
                    f"{first.get('Code')}: {first.get('Message')}"
                )

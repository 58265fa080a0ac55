"""The store's client: over plain HTTP no CA store is loaded (it costs every restore
and verifies nothing); over HTTPS the configured CA bundle is still used; botocore's data
files are read once per process, ahead of forks."""

import asyncio

import botocore.loaders
import pytest

from server_extension.storage.botodata import read_s3_client_data
from server_extension.storage.endpoint import configured_endpoint, plain_http
from server_extension.storage.location import WorkspaceLocation
from server_extension.storage.s3 import S3Error, S3Store

from .support.s3server import s3_server_fixture

BUCKET = "endpoints"
s3 = s3_server_fixture(relay=False, buckets=(BUCKET,))
MISSING_BUNDLE = "/nonexistent/ca-bundle.pem"


async def list_all(endpoint_url: str = "") -> dict:
    async with S3Store(
        WorkspaceLocation(BUCKET, endpoint_url=endpoint_url), max_attempts=1, connect_timeout=1
    ) as store:
        return await store.list("")


@pytest.mark.integration
@pytest.mark.parametrize("explicit", [True, False], ids=["setting", "AWS_ENDPOINT_URL_S3"])
def test_a_plain_http_endpoint_loads_no_ca_bundle(s3_env, monkeypatch, explicit):
    monkeypatch.setenv("AWS_CA_BUNDLE", MISSING_BUNDLE)  # reading it would fail
    assert asyncio.run(list_all(s3_env.endpoint_url if explicit else "")) == {}


@pytest.mark.integration
def test_an_https_endpoint_still_verifies_with_the_configured_bundle(s3_env, monkeypatch):
    monkeypatch.setenv("AWS_CA_BUNDLE", MISSING_BUNDLE)
    https = s3_env.endpoint_url.replace("http://", "https://")
    with pytest.raises(S3Error, match="No such file"):  # it read the bundle: verification on
        asyncio.run(list_all(https))


def test_the_endpoint_is_resolved_as_botocore_does(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://s3.example:9000")
    assert configured_endpoint("https://minio.example") == "https://minio.example"
    assert configured_endpoint() == "http://s3.example:9000"
    monkeypatch.setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")
    assert configured_endpoint() == ""
    assert plain_http("HTTP://s3.example") and not plain_http("https://s3.example")
    assert not plain_http("")


@pytest.mark.integration
def test_a_store_reads_no_botocore_data_file_once_it_was_read_ahead(s3_env, monkeypatch):
    read_s3_client_data()  # as the fork server does before it forks the servers
    files = []
    load_file = botocore.loaders.JSONFileLoader.load_file

    def recorded(loader, path):
        files.append(path)
        return load_file(loader, path)

    monkeypatch.setattr(botocore.loaders.JSONFileLoader, "load_file", recorded)
    assert asyncio.run(list_all(s3_env.endpoint_url)) == {}
    assert files == []

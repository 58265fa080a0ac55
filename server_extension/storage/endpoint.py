"""Which S3 endpoint a workspace talks to, as the AWS SDKs decide it."""

import os
from urllib.parse import urlsplit


def configured_endpoint(endpoint_url: str = "") -> str:
    """``endpoint_url``, else the standard ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``
    variables (unless ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`` is set, as botocore honours
    it); empty means AWS's own endpoint for the region."""
    if endpoint_url:
        return endpoint_url
    if os.environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").lower() == "true":
        return ""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or ""


def plain_http(endpoint: str) -> bool:
    """True for an ``http://`` endpoint, where no TLS is ever negotiated."""
    return urlsplit(endpoint).scheme.lower() == "http"

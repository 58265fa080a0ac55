"""Whether a request that changes something comes from the class page itself."""

from urllib.parse import urlsplit

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def from_the_page(method: str, headers, host: str) -> bool:
    """A browser names the page that sent a request in ``Origin`` (and, on secure
    origins and localhost, says ``Sec-Fetch-Site``): a change sent from another site is
    refused, beside the XSRF token JupyterHub's service auth checks. A client that sends
    neither header (a script with the viewer's cookie) is left to that check."""
    if method.upper() in SAFE_METHODS:
        return True
    site = headers.get("Sec-Fetch-Site")
    if site is not None and site != "same-origin":
        return False
    origin = headers.get("Origin")
    return origin is None or urlsplit(origin).netloc.lower() == host.lower()

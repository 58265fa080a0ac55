"""What the class page reads and does at the hub, and asks each student's server."""

import json
import ssl
import time
from urllib.parse import quote, urlsplit

import aiohttp

PAGINATION = "application/jupyterhub-pagination+json"
ANSWER_LIMIT = 64 * 1024  # bytes of a server's answer the class page reads
TOKEN_LIFETIME = 3600
TOKEN_RENEW_BEFORE = 600


class HubClient:
    """The hub's REST API with the service's token (or a viewer's, for their actions)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        api_url: str,
        token: str,
        student_scopes=(),
        proxy_tls: ssl.SSLContext | None = None,
    ):
        self.session = session
        # The hub's proxy over https on loopback: checked as the host its Host header names.
        self.proxy_tls = proxy_tls
        # Besides their servers: services a student's token must reach (the preview
        # gateway's share API checks that the token may access it).
        self.student_scopes = list(student_scopes)
        self.api_url = api_url.rstrip("/")
        self.token = token
        self._student_tokens: dict[str, tuple[str, float]] = {}

    async def request(self, method, path, token=None, body=None, headers=None):
        async with self.session.request(
            method,
            self.api_url + path,
            headers={"Authorization": f"token {token or self.token}", **(headers or {})},
            data=json.dumps(body) if body is not None else None,
        ) as response:
            text = await response.text()
            return response.status, (json.loads(text) if text.strip() else None)

    async def students(self, group: str, page_size: int = 200) -> list[dict]:
        """Every user the service may list (the students' group), servers included, the
        stopped ones too (so a stopped project stays on the page to be started again)."""
        users, offset = [], 0
        while True:
            status, body = await self.request(
                "GET",
                f"/users?offset={offset}&limit={page_size}&include_stopped_servers=1",
                headers={"Accept": PAGINATION},
            )
            if status != 200:
                raise RuntimeError(f"the hub answered {status} to the list of users")
            users.extend(user for user in body["items"] if group in (user.get("groups") or [group]))
            next_page = (body.get("_pagination") or {}).get("next")
            if not next_page:
                return users
            offset = next_page["offset"]

    async def student_token(self, user: str) -> str:
        """A token of ``user`` that may only open their servers, minted and renewed here.

        A user server checking a token resolves ``!user=`` filters, not ``!group=`` ones,
        so the service's own ``access:servers!group=students`` would not open them.
        """
        token, expires = self._student_tokens.get(user, ("", 0.0))
        if token and expires - time.monotonic() > TOKEN_RENEW_BEFORE:
            return token
        status, body = await self.request(
            "POST",
            f"/users/{quote(user, safe='')}/tokens",
            body={
                "scopes": [f"access:servers!user={user}", *self.student_scopes],
                "expires_in": TOKEN_LIFETIME,
                "note": "class page: sync state and preview sharing",
            },
        )
        if status not in (200, 201):
            raise RuntimeError(f"no token for {user}: {status} {body}")
        self._student_tokens[user] = (body["token"], time.monotonic() + TOKEN_LIFETIME)
        return body["token"]

    async def get_json(self, url: str, token: str, seconds: float, host: str = "") -> dict | None:
        """A JSON object a student's server answers with 200, or None (``call_server``)."""
        status, answer = await self.call_server("GET", url, token, seconds, host)
        return answer if status == 200 else None

    async def call_server(
        self, method: str, url: str, token: str, seconds: float, host: str = "", body=None
    ) -> tuple[int | None, dict | None]:
        """``(status, answer)`` of a student's server: status None when it did not answer
        within ``seconds``; answer None unless a JSON object of at most ``ANSWER_LIMIT``
        bytes (what a student's server says is theirs to choose). ``host``: the Host
        header the proxy routes by, when not ``url``'s."""
        headers = {"Authorization": f"token {token}", **({"Host": host} if host else {})}
        tls = {}
        if host and self.proxy_tls and url.startswith("https:"):
            tls = {"ssl": self.proxy_tls, "server_hostname": urlsplit(f"//{host}").hostname}
        try:
            async with self.session.request(
                method,
                url,
                headers=headers,
                json=body,
                **tls,
                timeout=aiohttp.ClientTimeout(total=seconds),
                allow_redirects=False,
            ) as response:
                status = response.status
                text = await response.content.read(ANSWER_LIMIT + 1)
        except (TimeoutError, aiohttp.ClientError):
            return None, None
        return status, json_object(text)


def json_object(text: bytes) -> dict | None:
    """``text`` as a JSON object, or None: too long, not JSON, or not an object."""
    if len(text) > ANSWER_LIMIT:
        return None
    try:
        answer = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return answer if isinstance(answer, dict) else None

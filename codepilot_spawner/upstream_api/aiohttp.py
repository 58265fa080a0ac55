"""What the preview gateway uses of aiohttp that it does not document as API: the
connector's ``_wrap_create_connection``, the extension point proxy connectors such as
aiohttp-socks use. Checked on aiohttp 3.12.0 to 3.14.5 (pyproject: ``>=3.12``).
"""

import aiohttp


class PreambleConnector(aiohttp.TCPConnector):
    """A pool whose every new connection begins with ``preamble`` (a relay's start line),
    written before the first request; a connection reused from the pool does not repeat it.
    """

    def __init__(self, preamble: bytes, **kwargs):
        super().__init__(**kwargs)
        self._preamble = preamble

    async def _wrap_create_connection(self, *args, **kwargs):
        """Each new connection, its preamble written first.

        Checked on aiohttp 3.12.0-3.14.5 (every new connection is made here, sockets from
        ``socket_factory`` included, and its transport returned before any request is
        written). If it drifts, Kubernetes previews that check their start answer every
        request with a refusal, or a request is sent before the start line.
        """
        transport, protocol = await super()._wrap_create_connection(*args, **kwargs)
        transport.write(self._preamble)
        return transport, protocol

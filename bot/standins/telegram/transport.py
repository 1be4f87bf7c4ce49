"""The stand-in reached in this process: a PTB transport (:class:`telegram.request.BaseRequest`)
that hands each Bot API call to the chat state, with no port and no HTTP server.

Fidelity to the wire is kept where it can matter: the parameters are what PTB would put on the
wire (:attr:`RequestData.json_parameters`, every file as a multipart part), read back by the same
code as the HTTP form reads them, and the answer is the same status and the same JSON bytes, which
PTB turns into results, ``BadRequest``, ``Forbidden`` or ``RetryAfter`` exactly as it does for
Telegram's. What is not modelled is the network itself (connections, pools, timeouts).

    request = StandInRequest(api)
    ApplicationBuilder().token(api.token).request(request).get_updates_request(StandInRequest(api))
"""

from __future__ import annotations

import re
from typing import Any, Final

from telegram.request import BaseRequest, RequestData

from bot.standins.telegram.chats import FakeBotApi
from bot.standins.telegram.methods import BotApiMethods
from bot.standins.telegram.values import BotApiError, UploadedFile
from bot.standins.telegram.wire import encode

BASE_URL: Final = "https://api.telegram.org/bot"
"""Any Bot API base URL will do (nothing is sent anywhere); this is PTB's default."""

_ENDPOINT: Final = re.compile(r".*/bot(?P<token>[^/]+)/(?P<method>[^/?]+)")


class StandInRequest(BaseRequest):
    """PTB's transport to a :class:`FakeBotApi` in the same event loop (one per ``Bot`` role:
    PTB wants its own for ``getUpdates``)."""

    def __init__(self, api: FakeBotApi) -> None:
        self._methods = BotApiMethods(api)

    @property
    def read_timeout(self) -> float | None:
        """What PTB adds to a long poll's ``timeout`` (as ``HTTPXRequest``'s default); no call
        here waits but a long poll, which its own ``timeout`` ends."""
        return 5.0

    async def initialize(self) -> None:
        """Nothing to open."""

    async def shutdown(self) -> None:
        """Nothing to close."""

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """Hand the call to the stand-in; the timeouts are PTB's to pass and not modelled here."""
        found = _ENDPOINT.fullmatch(url)
        if found is None:
            return 404, encode(BotApiError(404, "Not Found").envelope())
        raw: dict[str, str | UploadedFile] = {}
        if request_data is not None:
            raw.update(request_data.json_parameters)
            for name, (filename, data, content_type) in _parts(request_data).items():
                raw[name] = UploadedFile(data, filename, content_type)
        status, body = await self._methods.call(found["token"], found["method"], raw)
        return status, encode(body)


def _parts(request_data: RequestData) -> dict[str, tuple[str | None, bytes, str | None]]:
    """The multipart parts PTB would upload: name -> (file name, bytes, content type)."""
    parts = {}
    for name, part in request_data.multipart_data.items():
        filename, content, content_type = part[0], part[1], part[2] if len(part) > 2 else None
        data = content if isinstance(content, bytes) else content.read()
        parts[name] = (filename or None, data, content_type)
    return parts

"""The Bot API's wire format, shared by both ways to reach the stand-in (in this process and over
HTTP): parameters as PTB sends them (strings as they are, everything else JSON-encoded, files as
multipart parts) read back the way the Bot API reads them, and answers as the JSON bytes Telegram
sends (``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code": N, "description": ...,
"parameters": {"retry_after": N}}``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final

from bot.standins.telegram.values import UploadedFile, bad_request

# Fields whose value is a plain string even when it looks like JSON ("123", "true"): PTB sends
# strings as they are and everything else JSON-encoded, so these must not be decoded. (The string
# parameters of the methods answered here; a file given by id or URL is refused anyway.)
_STRING_FIELDS: Final = frozenset(
    {"text", "caption", "parse_mode", "callback_query_id", "inline_message_id", "language_code", "url", "photo",
     "document"}
)


def _decode_field(name: str, value: Any) -> Any:
    """A form value as the Bot API reads it: JSON if it is JSON (but strings stay strings)."""
    if not isinstance(value, str) or name in _STRING_FIELDS:
        return value
    try:
        decoded = json.loads(value)
    except ValueError:
        return value
    return value if isinstance(decoded, str) else decoded


def decode_params(raw: Mapping[str, str | UploadedFile | Any]) -> dict[str, Any]:
    """The parameters of one request as a Bot API method reads them (``attach://x`` resolved)."""
    params = {name: _decode_field(name, value) for name, value in raw.items()}
    for name, value in list(params.items()):
        if isinstance(value, str) and value.startswith("attach://"):
            attached = params.get(value.removeprefix("attach://"))
            if isinstance(attached, UploadedFile):
                params[name] = attached
    return params


def encode(body: Mapping[str, Any]) -> bytes:
    """An answer's bytes, exactly as the HTTP form writes them (Starlette's ``JSONResponse``)."""
    return json.dumps(body, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode()


def as_int(value: Any, name: str, *, default: int | None = None) -> int | None:
    """A parameter read as the Bot API reads an integer; 400 if it is none."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise bad_request(f"invalid {name} specified")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    raise bad_request(f"invalid {name} specified")


def as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"true", "1", "yes"}
    return bool(value)


def as_json(value: Any, name: str) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise bad_request(f"can't parse {name} JSON object") from None
    return value

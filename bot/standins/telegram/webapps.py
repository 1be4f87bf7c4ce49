"""Mini Apps (Web Apps) as Telegram takes them: the URL a ``web_app`` button opens
(``WebAppInfo.url``, "an HTTPS URL"), checked and normalized as the Bot API server checks it.

Telegram's own wording is kept: ``inline keyboard button Web App URL 'http://x.example' is invalid:
Only HTTPS links are allowed``, ``... Web App URL '' is invalid: URL host is empty``.

Two departures, both this project's: plain ``http://`` is accepted for ``localhost`` and
``127.0.0.1`` (Telegram's test environment takes any ``http://``; its production refuses it), and
``localhost`` is accepted though its name has no dot (Telegram answers ``Wrong HTTP URL`` for a
host without one, test environment included: a Mini App must be reached as ``127.0.0.1`` or by a
dotted name there).
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

from bot.standins.telegram.values import bad_request

LOCAL_HOSTS: Final = frozenset({"localhost", "127.0.0.1"})
"""Hosts a Web App may be reached at over plain ``http://`` (this project's test setups)."""

_HOST_SAFE: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-_!$,~*'();&+=")


class _Invalid(ValueError):
    """Why Telegram's link check refuses a URL (the text after ``is invalid:``)."""


def _check_part(part: str, name: str, *, allow_colon: bool) -> None:
    i = 0
    while i < len(part):
        c = part[i]
        if c.lower() in _HOST_SAFE or (allow_colon and c == ":") or ord(c) >= 128:
            i += 1
        elif c == "%":
            if not re.fullmatch(r"[0-9A-Fa-f]{2}", part[i + 1 : i + 3]):
                raise _Invalid(f"Wrong percent-encoded symbol in URL {name}")
            i += 3
        else:
            raise _Invalid(f"Disallowed character in URL {name}")


def _normalized(url: str) -> str:
    """``url`` as Telegram stores a Web App link (scheme and host in lower case, ``/`` for an empty
    path), or :class:`_Invalid` with Telegram's reason."""
    if re.match(r"(?i)(tg|ton|tonsite):", url):
        raise _Invalid("Only HTTPS links are allowed")
    scheme, rest = "http", url
    if found := re.match(r"([^:/?#@\[\]]*)://", url):
        scheme, rest = found.group(1).lower(), url[found.end() :]
        if scheme not in ("http", "https"):
            raise _Invalid("Unsupported URL protocol")
    authority = re.match(r"[^/?#]*", rest).group()  # type: ignore[union-attr]  # always matches
    query = rest[len(authority) :]
    userinfo, _, host_port = authority.rpartition("@")
    host, port = host_port, ""
    if (colon := host_port.rfind(":")) > host_port.rfind("]"):
        given = host_port[colon + 1 :]
        host, port = host_port[:colon], given.lstrip("0") or given[:1]
        if not re.fullmatch(r"[0-9]{1,5}", port) or not 0 < int(port) <= 65535:
            raise _Invalid("Wrong port number specified in the URL")
    host = host.lower()
    if not host:
        raise _Invalid("URL host is empty")
    if host == ".":
        raise _Invalid("Host is invalid")
    ipv6 = host.startswith("[") and host.endswith("]")
    if not ipv6:
        _check_part(host, "host", allow_colon=False)
        _check_part(userinfo, "userinfo", allow_colon=True)
    if scheme != "https" and host not in LOCAL_HOSTS:
        raise _Invalid("Only HTTPS links are allowed")
    if "." not in host and not ipv6 and host not in LOCAL_HOSTS:
        raise _Invalid("Wrong HTTP URL")
    query = query.rstrip()
    query = ("" if query.startswith("/") else "/") + query
    query = "".join(f"%{ord(c):02X}" if ord(c) <= 0x20 else c for c in query)
    return f"{scheme}://{userinfo + '@' if userinfo else ''}{host}{':' + port if port else ''}{query}"


def web_app_url(url: str, what: str) -> str:
    """The Web App ``url`` as Telegram stores it; 400 ``<what> Web App URL '<url>' is invalid: <why>``
    (``what``: ``inline keyboard button`` or ``menu button``) if Telegram would refuse it."""
    try:
        return _normalized(url)
    except _Invalid as why:
        raise bad_request(f"{what} Web App URL '{url}' is invalid: {why}") from None


def string_field(found: dict[str, Any], name: str, where: str) -> str:
    """A required string field of a JSON object (numbers taken as their text, as Telegram does)."""
    if name not in found:
        raise bad_request(f"{where}: Can't find field \"{name}\"")
    value = found[name]
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return json.dumps(value)
    raise bad_request(f'{where}: Field "{name}" must be of type String')


def web_app_info(button: dict[str, Any], where: str) -> str:
    """The ``url`` of a button's ``web_app`` object, unchecked; refused as Telegram refuses a
    ``web_app`` that is no object or has no ``url``."""
    info = button["web_app"]
    if not isinstance(info, dict):
        raise bad_request(f'{where}: Field "web_app" must be of type Object')
    return string_field(info, "url", where)

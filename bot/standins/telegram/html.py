"""HTML as Telegram parses it (``parse_mode=HTML``): the text a person sees, its entities with
UTF-16 offsets, and the refusals with Telegram's own words; also the ``bot_command`` entities
Telegram marks in what a person types."""

from __future__ import annotations

import re
from typing import Any, Final

_SPACE: Final = " \t\r\n\v\f\0"
_COMMAND_RE: Final = re.compile(r"(?<![\w/<>])/([A-Za-z0-9_]{1,64})(?:@[A-Za-z0-9_]{3,32})?(?![\w/<>])")


def utf16_len(text: str) -> int:
    """Telegram counts entity offsets and lengths in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


class HtmlError(ValueError):
    """Telegram would answer ``Bad Request: can't parse entities: <message>``."""


_HTML_TAGS: Final = frozenset(
    {
        "a",
        "b",
        "strong",
        "i",
        "em",
        "s",
        "strike",
        "del",
        "u",
        "ins",
        "tg-spoiler",
        "tg-emoji",
        "span",
        "pre",
        "code",
        "blockquote",
    }
)
_SIMPLE_ENTITIES: Final = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "blockquote": "blockquote",
}
# Telegram orders entities that start and end together by type (tdlib's type priorities).
_ENTITY_PRIORITY: Final = {
    "blockquote": 0,
    "pre": 11,
    "code": 20,
    "text_link": 49,
    "bold": 90,
    "italic": 91,
    "underline": 92,
    "strikethrough": 93,
    "spoiler": 94,
    "custom_emoji": 99,
}
_NAMED_ENTITIES: Final = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


def _decode_html_entity(text: str, pos: int) -> tuple[str, int] | None:
    """The character an ``&...;`` at ``pos`` stands for and where it ends; ``None`` if it is no
    entity Telegram knows (numeric ones, ``&lt;`` ``&gt;`` ``&amp;`` ``&quot;``)."""
    end = pos + 1
    if text.startswith("#", end):
        end += 1
        hexadecimal = text.startswith("x", end)
        if hexadecimal:
            end += 1
        digits = "0123456789abcdefABCDEF" if hexadecimal else "0123456789"
        start = end
        while end < len(text) and text[end] in digits:
            end += 1
        if end == start or end - pos >= 10:
            return None
        code = int(text[start:end], 16 if hexadecimal else 10)
        if code == 0 or code >= 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            return None
        char = chr(code)
    else:
        start = end
        while end < len(text) and text[end].isascii() and text[end].isalpha():
            end += 1
        char = _NAMED_ENTITIES.get(text[start:end], "")
        if not char:
            return None
    if text.startswith(";", end):
        end += 1
    return char, end


def parse_html(text: str, *, strict: bool = True) -> tuple[str, list[dict[str, Any]]]:
    """Parse ``text`` as Telegram parses ``parse_mode=HTML``: the text the person sees and its
    ``MessageEntity`` list (UTF-16 offsets).

    Follows Telegram's own parser (tdlib ``parse_html``): the supported tags only, attributes
    ``href``, ``class="language-..."``, ``class="tg-spoiler"`` and ``emoji-id``, tags balanced,
    the same error messages. ``strict`` also refuses an ``&`` that starts no entity and a bare
    ``>``: Telegram lets those through, but they show that some text was not escaped, and the
    next such text may hold a ``<`` that Telegram does refuse.

    Raises :class:`HtmlError` with the message Telegram gives after ``can't parse entities:``.
    """
    n = len(text)

    def byte_offset(pos: int) -> int:
        return len(text[:pos].encode())

    out: list[str] = []
    utf16 = 0
    entities: list[dict[str, Any]] = []
    # (tag, argument, utf16 offset at start, index into out at start)
    stack: list[tuple[str, str, int, int]] = []
    i = 0
    while i < n:
        c = text[i]
        if c == "&":
            decoded = _decode_html_entity(text, i)
            if decoded is not None:
                char, i = decoded
                out.append(char)
                utf16 += utf16_len(char)
                continue
            if strict:
                raise HtmlError(
                    f'Character "&" must be escaped as "&amp;" at byte offset {byte_offset(i)} '
                    "(the local Bot API is stricter than Telegram here)"
                )
        if c == ">" and strict:
            raise HtmlError(
                f'Character ">" must be escaped as "&gt;" at byte offset {byte_offset(i)} '
                "(the local Bot API is stricter than Telegram here)"
            )
        if c != "<":
            out.append(c)
            utf16 += utf16_len(c)
            i += 1
            continue

        begin = i
        i += 1
        if i >= n or text[i] != "/":
            # a start tag
            while i < n and text[i] not in _SPACE and text[i] != ">":
                i += 1
            if i >= n:
                raise HtmlError(f"Unclosed start tag at byte offset {byte_offset(begin)}")
            tag = text[begin + 1 : i].lower()
            if tag not in _HTML_TAGS:
                raise HtmlError(f'Unsupported start tag "{tag}" at byte offset {byte_offset(begin)}')
            argument = ""
            while i < n and text[i] != ">":
                while i < n and text[i] in _SPACE:
                    i += 1
                if i < n and text[i] == ">":
                    break
                attribute_begin = i
                while i < n and text[i] not in _SPACE and text[i] != "=":
                    i += 1
                attribute = text[attribute_begin:i]
                if not attribute:
                    raise HtmlError(f'Empty attribute name in the tag "{tag}" at byte offset {byte_offset(begin)}')
                while i < n and text[i] in _SPACE:
                    i += 1
                if i >= n or text[i] != "=":
                    raise HtmlError(
                        f'Expected equal sign in declaration of an attribute of the tag "{tag}" '
                        f"at byte offset {byte_offset(begin)}"
                    )
                i += 1
                while i < n and text[i] in _SPACE:
                    i += 1
                if i >= n:
                    raise HtmlError(f'Unclosed start tag "{tag}" at byte offset {byte_offset(begin)}')
                if text[i] not in "'\"":
                    token_begin = i
                    while i < n and (text[i].isascii() and text[i].isalnum() or text[i] in ".-"):
                        i += 1
                    value = text[token_begin:i].lower()
                    if i < n and text[i] not in _SPACE and text[i] != ">":
                        raise HtmlError(f"Unexpected end of name token at byte offset {byte_offset(token_begin)}")
                else:
                    quote = text[i]
                    i += 1
                    chars: list[str] = []
                    while i < n and text[i] != quote:
                        if text[i] == "&":
                            decoded = _decode_html_entity(text, i)
                            if decoded is not None:
                                chars.append(decoded[0])
                                i = decoded[1]
                                continue
                        chars.append(text[i])
                        i += 1
                    if i < n:
                        i += 1
                    value = "".join(chars)
                if i >= n:
                    raise HtmlError(f"Unclosed start tag at byte offset {byte_offset(begin)}")
                if tag == "a" and attribute == "href":
                    argument = value
                elif tag == "code" and attribute == "class" and value.startswith("language-"):
                    argument = value.removeprefix("language-")
                elif tag == "span" and attribute == "class" and value.startswith("tg-"):
                    argument = value.removeprefix("tg-")
                elif tag == "tg-emoji" and attribute == "emoji-id":
                    argument = value
            if tag == "span" and argument != "spoiler":
                raise HtmlError(f'Tag "span" must have class "tg-spoiler" at byte offset {byte_offset(begin)}')
            stack.append((tag, argument, utf16, len(out)))
            i += 1  # past '>'
            continue

        # an end tag
        if not stack:
            raise HtmlError(f"Unexpected end tag at byte offset {byte_offset(begin)}")
        i += 1  # past '/'
        name_begin = i
        while i < n and text[i] not in _SPACE and text[i] != ">":
            i += 1
        end_tag = text[name_begin:i].lower()
        while i < n and text[i] in _SPACE:
            i += 1
        if i >= n or text[i] != ">":
            raise HtmlError(f"Unclosed end tag at byte offset {byte_offset(begin)}")
        tag, argument, start, out_start = stack.pop()
        if end_tag and end_tag != tag:
            raise HtmlError(
                f'Unmatched end tag at byte offset {byte_offset(begin)}, expected "</{tag}>", found "</{end_tag}>"'
            )
        i += 1  # past '>'
        length = utf16 - start
        if length <= 0:
            continue
        entity: dict[str, Any] = {"offset": start, "length": length}
        if tag in _SIMPLE_ENTITIES or (tag == "span" and argument == "spoiler"):
            entity["type"] = _SIMPLE_ENTITIES.get(tag, "spoiler")
        elif tag == "tg-emoji":
            if not argument.isdigit() or int(argument) == 0:
                raise HtmlError("Invalid custom emoji identifier specified")
            entity |= {"type": "custom_emoji", "custom_emoji_id": argument}
        elif tag == "a":
            url = argument or "".join(out[out_start:])
            if not url.strip():
                continue
            entity |= {"type": "text_link", "url": url}
        elif tag == "pre":
            last = entities[-1] if entities else None
            if last and last["type"] == "code" and (last["offset"], last["length"]) == (start, length):
                language = last.pop("language", None)
                last["type"] = "pre"
                if language:
                    last["language"] = language
                continue
            entity["type"] = "pre"
        elif tag == "code":
            last = entities[-1] if entities else None
            if last and last["type"] == "pre" and (last["offset"], last["length"]) == (start, length) and argument:
                last["language"] = argument
                continue
            entity["type"] = "code"
            if argument:
                entity["language"] = argument  # dropped below unless a <pre> wraps it
        entities.append(entity)
    if stack:
        raise HtmlError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    for entity in entities:
        if entity["type"] == "code":
            entity.pop("language", None)
    entities.sort(key=lambda e: (e["offset"], -e["length"], _ENTITY_PRIORITY.get(e["type"], 50)))
    return "".join(out), entities


def command_entities(text: str) -> list[dict[str, Any]]:
    """The ``bot_command`` entities Telegram marks in a text a person sends."""
    return [
        {"offset": utf16_len(text[: m.start()]), "length": utf16_len(m.group(0)), "type": "bot_command"}
        for m in _COMMAND_RE.finditer(text)
    ]

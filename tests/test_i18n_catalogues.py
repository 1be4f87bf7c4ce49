"""The catalogues: every message of bot/texts.py translated in French and Swahili, with the same
placeholders, the same HTML tags and the same command names as the English one."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po

from bot import i18n

TEXTS = Path(i18n.__file__).parent / "texts.py"
POT = i18n.LOCALE_DIR / f"{i18n.DOMAIN}.pot"
TRANSLATED = [language for language in i18n.LANGUAGES if language != i18n.DEFAULT]

PLACEHOLDER = re.compile(r"\{(\w*)[^{}]*\}")
TAG = re.compile(r"</?[a-z]+>")
COMMAND = re.compile(r"(?<![\w/<])/[a-z]+\b")

Message = str | tuple[str, str]


def in_source() -> set[Message]:
    """What bot/texts.py marks for translation, as Babel extracts it."""
    return {message for _, message, _, _ in extract_from_file("python", TEXTS, keywords=i18n.KEYWORDS)}


def catalogue(path: Path, language: str | None = None) -> Catalog:
    with path.open("rb") as file:
        return read_po(file, locale=language)


def marks(text: str) -> tuple[Counter[str], Counter[str], Counter[str]]:
    """What must survive translation: placeholders, tags, command names."""
    return Counter(PLACEHOLDER.findall(text)), Counter(TAG.findall(text)), Counter(COMMAND.findall(text))


def test_the_template_holds_every_message_of_the_code() -> None:
    """Run the extraction in babel.cfg after changing a sentence, so translators see it."""
    template = {message.id for message in catalogue(POT) if message.id}
    assert in_source() - template == set(), "bot/locale/messages.pot is stale: run the pybabel extract in babel.cfg"


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_message_is_translated_with_the_same_marks(language: str) -> None:
    translations = catalogue(i18n.catalogue_path(language), language)
    problems = []
    for source in sorted(in_source(), key=str):
        message = translations.get(source if isinstance(source, str) else source[0])
        if message is None or message.fuzzy or not message.string or not all(message.string):
            problems.append(f"not translated: {source!r}")
            continue
        english = list(source) if isinstance(source, tuple) else [source]
        translated = list(message.string) if isinstance(message.string, tuple) else [message.string]
        expected = marks(english[-1])
        for text in translated:
            if marks(text) != expected:
                problems.append(f"placeholders, tags or commands differ: {english[-1]!r} -> {text!r}")
    assert problems == []


@pytest.mark.parametrize("language", TRANSLATED)
def test_catalogues_compile_and_are_used(language: str) -> None:
    from bot import texts

    english, other = texts.for_language("en"), texts.for_language(language)
    assert other.language == language
    assert other.cancelled != english.cancelled
    assert other.days(3) != english.days(3) and "3" in other.days(3)
    assert other.help_for("agent").count("/days") == english.help_for("agent").count("/days")


def test_a_telegram_language_code_picks_one_of_ours() -> None:
    assert [i18n.pick(code) for code in ("fr", "fr-CA", "sw", "sw-KE", "en-GB", "de", "", None, "FR")] == [
        "fr", "fr", "sw", "sw", "en", "en", "en", "en", "fr"]

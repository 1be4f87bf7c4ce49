"""The bot's languages: which one a person gets, and the gettext catalogues behind :mod:`bot.texts`.

English is written in the code (the catalogues' message ids); French and Swahili live in
``bot/locale/<language>/LC_MESSAGES/messages.po``, kept with Babel (see the README's
"Languages" section). The ``.po`` files are compiled in memory the first time a language is
used, so there is no build step and no compiled file to forget.
"""

from __future__ import annotations

import gettext
import io
from functools import cache
from pathlib import Path

from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LANGUAGES = ("en", "fr", "sw")
DEFAULT = "en"
NAMES = {"en": "English", "fr": "Français", "sw": "Kiswahili"}
"""Each language in its own words: what the /language buttons say."""

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "messages"
KEYWORDS = {"_": None, "n_": (1, 2)}
"""How :mod:`bot.texts` marks a message for translation (Babel's extraction keywords)."""

# Babel's plain "en" is American (month first); the field reads day first.
_FORMATTING = {"en": "en_GB", "fr": "fr", "sw": "sw"}


def pick(code: str | None) -> str:
    """One of ours for a Telegram ``language_code`` ("fr-CA" -> "fr"), English when it is none of them."""
    if not code:
        return DEFAULT
    base = code.replace("_", "-").split("-")[0].lower()
    return base if base in LANGUAGES else DEFAULT


def catalogue_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


@cache
def translations(language: str) -> gettext.NullTranslations:
    """The language's catalogue, compiled from its ``.po`` file; English needs none."""
    if language == DEFAULT:
        return gettext.NullTranslations()
    with catalogue_path(language).open("rb") as po:
        catalogue = read_po(po, locale=language, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalogue)  # fuzzy entries are left out: they fall back to English
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


@cache
def locale(language: str) -> Locale:
    """The Babel locale used to format dates, numbers and amounts in ``language``."""
    return Locale.parse(_FORMATTING[language])

"""What speaking three languages costs: compiling each catalogue at start, and writing a message.

For English, French and Swahili: the time to read and compile the ``.po`` file (done once per
process, the first time the language is used), then the time to write the messages that go out
most (a code message, a queued answer, a paid code, a refusal with a date), p50 and p99 over many
runs — gettext lookup, placeholders and Babel's dates and amounts included.

    python bench/texts_languages.py [--runs 20000]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import percentile  # noqa: E402
from bot import i18n, texts  # noqa: E402

TZ = ZoneInfo("Africa/Nairobi")
WHEN = datetime(2026, 12, 23, 9, 30, tzinfo=UTC)


def messages(t: texts.Texts) -> list[str]:
    code = dict(device="TEST2503000017", kind="days", days=30, code="*015 046 309 852 311 443 810#",
                credit_until=WHEN, tz=TZ)
    return [
        t.code_issued(**code),
        t.queued("TEST2503000017", 6.2),
        t.paid_code(for_customer=True, reference="QK71ABC123", amount=250, currency="KES", **code),
        t.refused("daily_limit", "TEST2503000017", possible_at=WHEN, tz=TZ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20000)
    args = parser.parse_args()
    print(f"{'language':<9} {'start (ms)':>13} {'message p50 (µs)':>17} {'p99 (µs)':>9}")
    for language in i18n.LANGUAGES:
        i18n.translations.cache_clear()
        i18n.locale.cache_clear()
        started = time.perf_counter()
        words = texts.Texts(language)  # compiles the catalogue, loads the locale (cached per process afterwards)
        compiled = (time.perf_counter() - started) * 1000
        messages(words)
        samples = []
        for _ in range(args.runs // 4):
            started = time.perf_counter()
            messages(words)
            samples.append((time.perf_counter() - started) / 4 * 1e6)
        print(f"{language:<9} {compiled:>13.1f} {percentile(samples, 0.5):>17.1f} {percentile(samples, 0.99):>9.1f}")


if __name__ == "__main__":
    main()

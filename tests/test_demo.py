"""``paygbot demo`` as a person runs it: offline, finishes by itself, exits 0, leaves nothing behind."""

from __future__ import annotations

import time
from pathlib import Path

from tests.support.cli import run


def test_the_demo_plays_the_day_and_leaves_nothing(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    (work / ".env").write_text("ERM_USERNAME=someone@example.com\nERM_PASSWORD=real-password\n"
                               "DATABASE_URL=sqlite:////nonexistent/ledger.db\n")
    started = time.monotonic()
    result = run("demo", cwd=work, env={"TMPDIR": str(scratch), "ERM_USERNAME": "x", "PAYGBOT_MIN_GAP_SECONDS": "60"},
                 timeout=120)
    assert result.code == 0, result.err
    assert time.monotonic() - started < 60
    out = result.out
    for line in (
        "Mary (manager) ▸ /invite agent", "Alex (agent) ▸ /start ", "You are an agent",
        "Alex (agent) ▸ /customer TEST2503000017", "Jane (customer) ▸ /start",
        "Alex (agent) ▸ /find 3000017", "Alex (agent) ▸ [taps TEST2503000017]", "Solar home system TEST2503000017", "Alex (agent) ▸ /days TEST2503000017 30",
        "🔑 TEST2503000017 — 30 days", "Queued for TEST2503000017", "webhook answered 200",
        "Alex (agent) ▸ /meter TEST2503000017 ", "Jane (customer) ▸ /usage", "⚡ Energy use — Jane Wanjiru",
        "This month so far: ", " kWh (KES ", "Omnimetic sandbox: these figures are made up",
        "Jane (customer) ▸ /language sw", "Malipo yako ya Ksh\xa0250.00 (QK71ABC123) yamepokelewa",
        "Alex: 💰 Payment QK71ABC123: KES 250.00", "Mary (manager) ▸ [taps Approve]",
        "free code: unlocks for good", "Summary for Mon, 23 Nov 2026", "The demo is over",
        "Mary (manager) ▸ /plan TEST2503000017 1500 50 KES", "Plan set for TEST2503000017",
        "Alex: 💰 Payment QK71ABC123: KES 250.00", "Paid so far: KES 250.00 of KES 1,500.00",
        "POST /payments  {reference QK71ABD456, KES 1250.00",
        "Plan paid off: TEST2503000017 (Jane Wanjiru) has paid KES 1,500.00 of KES 1,500.00",
        "TEST2503000017 — msimbo wa bure", "Jane (customer) ▸ /balance",
        "$ paygbot plans import old-system-plans.csv", "3 rows: 3 new plans, 0 unchanged, 3 new customers — applied",
        "📈 PAR30 31.2%", "Mary (manager) ▸ /portfolio", "Plans: 3 being paid, 1 paid off, 0 repossessed",
        "PAR30: 31.2% (left to pay more than 30 days past due: KES 1,500.00)", "Alex (agent) ▸ /visits",
        "Tom Mwangi, +254744333444 — SBX00000000003: 44 days past due",
        "Grace Achieng, +254733222333 — SBX00000000002: 11 days past due",
    ):
        assert line in out, line
    assert "Traceback" not in result.err and "ERROR" not in result.err
    assert list(scratch.iterdir()) == [] and sorted(p.name for p in work.iterdir()) == [".env"]


def test_the_demo_plays_the_same_day_over_graphql(tmp_path: Path) -> None:
    result = run("-v", "demo", "--api", "graphql", cwd=tmp_path, timeout=120)
    assert result.code == 0, result.err
    out = result.out
    assert "the ERM sandbox over GraphQL" in out
    for line in ("🔑 TEST2503000017 — 30 days", "Alex: 💰 Payment QK71ABC123: KES 250.00",
                 "free code: unlocks for good", "The demo is over"):
        assert line in out, line
    assert "Traceback" not in result.err and "ERROR" not in result.err
    assert "ERM POST generateDaysCode -> 200" in result.err and "ERM POST signInClient -> 200" in result.err
    assert "/otp/daysCode" not in result.err  # the bot spoke GraphQL only

"""What a busy morning relies on (issue 20): messages paced evenly under Telegram's limits, counted as Telegram
counts them, a 429 holding back only its own chat, the ERM's missing item lookup asked once, new devices waiting for
the page of the sync under way (or about to start), the start-up sync asking before the first update is taken, a
restart that registers no menu that did not change, and a device's next code claimed ahead of its gap, which counts
from before the last code's answer."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from telegram.error import RetryAfter

from bot.clock import ManualClock, SystemClock
from bot.erm.backend import ErmBackend
from bot.issuing import Accepted, IssuingEngine
from bot.issuing.anticipation import KNOWN
from bot.issuing.devices import read_ahead
from bot.standins.erm import ErmSandbox
from bot.standins.telegram import FakeBotApi
from bot.telegram_pace import CHAT_BURST, LOCAL_CHAT_INTERVAL, LOCAL_CHAT_PER_SECOND, LocalRateLimiter
from handlers import menus
from storage import ledger
from storage.db import Database
from storage.models import CodeKind, CodeRequest, Status
from tests.support.chat import AGENT, TOKEN, Chat, chatting
from tests.support.settings import make_settings
from tests.support.waiting import eventually

pytestmark = pytest.mark.sqlite_only  # nothing here is about the ledger's kind


class Recorder:
    """A Bot API call that records when it was made (loop seconds), by chat; ``refuse`` chats get one 429."""

    def __init__(self, refuse: set[int] | None = None) -> None:
        self.times: list[tuple[int, float]] = []
        self.refuse = set(refuse or ())

    async def __call__(self, chat_id: int) -> bool:
        if chat_id in self.refuse:
            self.refuse.discard(chat_id)
            raise RetryAfter(timedelta(seconds=1))
        self.times.append((chat_id, asyncio.get_running_loop().time()))
        return True

    def of(self, chat_id: int) -> list[float]:
        return [when for chat, when in self.times if chat == chat_id]


async def send(limiter: LocalRateLimiter, call: Recorder, chat_id: int) -> Any:
    return await limiter.process_request(call, (chat_id,), {}, "sendMessage", {"chat_id": chat_id}, None)


async def test_messages_go_one_interval_apart_in_the_order_asked() -> None:
    limiter, call = LocalRateLimiter(interval=0.02), Recorder()
    await asyncio.gather(*(send(limiter, call, 100 + n) for n in range(40)))
    assert [chat for chat, _ in call.times] == [100 + n for n in range(40)]  # first asked, first sent
    times = [when for _, when in call.times]
    # never a burst: each message goes an interval after the one before went. Only a stall of this process
    # between a message's turn and its call (a busy machine) can bring the next one closer, and only that one
    close = [n for n, (earlier, later) in enumerate(itertools.pairwise(times)) if later - earlier < 0.02]
    assert len(close) <= 3 and all(b - a > 1 for a, b in itertools.pairwise(close)), close


async def test_no_second_holds_more_than_its_share_of_the_bots_messages() -> None:
    limiter, call = LocalRateLimiter(interval=0.001, per_second=10, second=0.2), Recorder()
    await asyncio.gather(*(send(limiter, call, 100 + n) for n in range(35)))
    times = [when for _, when in call.times]
    assert len(times) == 35
    assert all(later - earlier >= 0.2 for earlier, later in zip(times, times[10:], strict=False))


async def _sent_with(slow: float, limiter: LocalRateLimiter, count: int) -> tuple[list[float], list[float]]:
    """``count`` messages to as many chats; the first five each reach Telegram at the very end of ``slow`` seconds,
    the others at once. When each went and when each reached Telegram (loop seconds)."""
    went: list[float] = []
    reached: list[float] = []

    async def call(chat_id: int) -> bool:
        went.append(asyncio.get_running_loop().time())
        if len(went) <= 5:
            await asyncio.sleep(slow)
        reached.append(asyncio.get_running_loop().time())
        return True

    await asyncio.gather(*(limiter.process_request(call, (100 + n,), {}, "sendMessage", {"chat_id": 100 + n}, None)
                           for n in range(count)))
    return sorted(went), sorted(reached)


async def test_the_bots_second_is_counted_from_telegrams_answers_so_slow_messages_do_not_bunch() -> None:
    """Counted from when they went, the sixth message would reach Telegram 0.17 s after the first (0.03 s late);
    counted from the first's answer, a whole second (0.2 s here) after it. (The answers are waited for however late a
    busy machine makes them: not waiting past ``held_up`` is the next test's.)"""
    _, reached = await _sent_with(0.03, LocalRateLimiter(interval=0.001, per_second=5, second=0.2, held_up=1.0), 12)
    assert len(reached) == 12
    assert all(later - earlier >= 0.2 for earlier, later in zip(reached, reached[5:], strict=False))


async def test_an_answer_slower_than_a_message_is_held_up_is_not_waited_for() -> None:
    """A distant Telegram: the sixth goes a second (0.2 s here) after the first was taken to have reached it,
    ``held_up`` after it went, not a second after its answer."""
    went, _ = await _sent_with(1.0, LocalRateLimiter(interval=0.001, per_second=5, second=0.2, held_up=0.05), 6)
    assert 0.25 <= went[5] - went[0] < 1.0  # (waiting for the answer: 1.2 s)


async def test_one_chat_gets_a_few_at_once_then_is_paced() -> None:
    limiter, call = LocalRateLimiter(interval=0.001), Recorder()
    at_once = int(CHAT_BURST) + 1
    await asyncio.gather(*(send(limiter, call, 7) for _ in range(at_once + 1)))
    times = call.of(7)
    assert len(times) == at_once + 1
    assert times[at_once] - times[0] >= LOCAL_CHAT_INTERVAL  # the one past the burst waits its chat's turn


async def test_one_chat_never_gets_more_than_five_in_a_second() -> None:
    """Five at once, then four a second would put eight in the burst's first second: past Telegram's few."""
    limiter, call = LocalRateLimiter(interval=0.001), Recorder()
    await asyncio.gather(*(send(limiter, call, 7) for _ in range(8)))
    times = call.of(7)
    assert len(times) == 8
    assert all(later - earlier >= 1.0 for earlier, later in zip(times, times[LOCAL_CHAT_PER_SECOND:], strict=False))
    assert times[-1] - times[0] < 2.0  # and then four a second: the eighth is not a second later still


async def test_a_message_given_up_before_its_turn_holds_back_no_later_one_of_its_chat() -> None:
    limiter, call = LocalRateLimiter(interval=0.001), Recorder()
    await asyncio.gather(*(send(limiter, call, 7) for _ in range(LOCAL_CHAT_PER_SECOND)))
    given_up = asyncio.ensure_future(send(limiter, call, 7))  # waits for the chat's second to pass
    await asyncio.sleep(0.05)
    given_up.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await given_up
    for _ in range(LOCAL_CHAT_PER_SECOND):  # the last one's fifth message before is the one given up
        assert await asyncio.wait_for(send(limiter, call, 7), 5) is True
    assert len(call.of(7)) == 2 * LOCAL_CHAT_PER_SECOND


async def test_a_429_holds_back_its_chat_only_and_is_tried_again() -> None:
    limiter, call = LocalRateLimiter(interval=0.001), Recorder(refuse={1})
    first = asyncio.ensure_future(send(limiter, call, 1))
    await asyncio.sleep(0.05)
    assert await send(limiter, call, 2) is True
    assert await first is True
    [other], [retried] = call.of(2), call.of(1)
    assert other < retried  # the other chat did not wait for the refused one
    assert retried - other >= 0.9  # retry_after (1 s) honoured
    assert await send(limiter, call, 3) is True  # nothing was stopped for the whole bot
    assert call.of(3)[0] < retried + 0.5


@pytest.fixture
def erm_sandbox(erm_sandbox: ErmSandbox) -> ErmSandbox:
    """An ERM that does not offer ``assignedItems/{id}`` (it still lists its items)."""
    erm_sandbox.offers_item_lookup = False
    return erm_sandbox


def lookups(sandbox: ErmSandbox) -> int:
    return len([call for call in sandbox.calls if call.path.startswith("/oves/assignedItems/")])


async def test_an_item_lookup_the_erm_does_not_offer_is_asked_once(engine: IssuingEngine, erm_sandbox: ErmSandbox,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    if engine.erm.api != "rest":
        pytest.skip("the item lookup is REST's assignedItems/{id}")
    devices = [device.oem_item_id for device in erm_sandbox.devices if device.oem_item_id.startswith("SBX")][:3]
    with caplog.at_level(logging.INFO, logger="paygbot.issuing"):
        for device in devices:
            assert isinstance(await engine.resolve_device(device), int)
    # the first 404 (for a device whose history the ERM shows) is remembered: the others are not asked
    assert len([r for r in caplog.records if "does not offer item lookups" in r.getMessage()]) == 1
    histories = [call for call in erm_sandbox.calls if "codeHistoryList" in call.path]
    assert len(histories) == 3  # each new id is still told apart by its history


async def test_a_new_device_asked_during_a_sync_is_found_by_it(engine: IssuingEngine, erm_sandbox: ErmSandbox) -> None:
    erm_sandbox.latency = 0.2  # the sync's page takes a while: the request comes meanwhile
    syncing = asyncio.ensure_future(engine.sync_devices())
    await asyncio.sleep(0.05)
    device_id = await engine.resolve_device("SBX00000000003")
    await syncing
    assert isinstance(device_id, int)
    device = await engine.device(device_id)
    assert device is not None and device.verified  # all its ids from the sync: not a row of its own to check
    assert lookups(erm_sandbox) == 0 and not [call for call in erm_sandbox.calls if "codeHistory" in call.path]


async def test_a_new_device_asked_before_the_start_up_sync_begins_waits_for_it(engine: IssuingEngine,
                                                                                erm_sandbox: ErmSandbox) -> None:
    engine.expect_device_sync()  # as at the start: the sync's job is scheduled, not yet begun
    asking = asyncio.ensure_future(engine.resolve_device("SBX00000000003"))
    await asyncio.sleep(0.05)
    assert not asking.done()  # it waits for the sync rather than looking the id up by itself
    await engine.sync_devices()
    device_id = await asking
    assert isinstance(device_id, int)
    device = await engine.device(device_id)
    assert device is not None and device.verified
    assert lookups(erm_sandbox) == 0 and not [call for call in erm_sandbox.calls if "codeHistory" in call.path]


async def test_a_new_device_on_the_syncs_first_page_does_not_wait_for_the_last(engine: IssuingEngine,
                                                                              erm_sandbox: ErmSandbox) -> None:
    erm_sandbox.latency = 0.2  # each page a while: the sync of pages of 2 takes many of them
    pages = -(-len(erm_sandbox.devices) // 2)
    assert pages >= 4
    first = erm_sandbox.devices[0].oem_item_id
    syncing = asyncio.ensure_future(engine.sync_devices(page_size=2))
    await asyncio.sleep(0.05)
    device_id = await engine.resolve_device(first)
    assert isinstance(device_id, int)
    assert not syncing.done()  # found once its page was written, while the sync goes on
    await syncing
    device = await engine.device(device_id)
    assert device is not None and device.verified and lookups(erm_sandbox) == 0


async def issued(db: Database, answers: list[Accepted]) -> list[CodeRequest]:
    """The requests answered, once every one of them is issued."""

    async def all_issued() -> list[CodeRequest] | None:
        async with db.read() as session:
            rows = [await ledger.get_request(session=session, request_id=answer.request_id) for answer in answers]
        done = [row for row in rows if row is not None and row.status is Status.ISSUED]
        return done if len(done) == len(answers) else None

    return await eventually(all_issued, "every code issued", 20)


async def test_a_devices_next_code_is_claimed_ahead_of_its_gap_and_leaves_when_it_ends(
        db: Database, erm: ErmBackend, erm_sandbox: ErmSandbox) -> None:
    """The device's gap counts from before its last code's answer (by part of the ERM's time before its commit, see
    bot.issuing.anticipation), and still the ERM sees every gap whole and never says "not yet"."""
    gap = 0.5
    erm_sandbox.clock, erm_sandbox.min_gap_seconds, erm_sandbox.latency = SystemClock(), gap, 0.2
    engine = IssuingEngine(db=db, erm=erm, settings=make_settings(PAYGBOT_MIN_GAP_SECONDS=gap), clock=SystemClock())
    try:
        device = erm_sandbox.devices[0].oem_item_id
        answers = [await engine.request(device, CodeKind.DAYS, 1) for _ in range(3)]
        assert all(isinstance(answer, Accepted) for answer in answers)
        rows = await issued(db, answers)
        async with db.read() as session:
            counted_from = (await ledger.get_device(session=session, device_id=rows[0].device_id)).last_generation_at
    finally:
        await engine.close()
    last = rows[-1]  # (by then the ERM's round trips are known: the sign-in, the lookups, the codes before)
    assert last.sent_at is not None and last.issued_at is not None and counted_from is not None
    assert last.sent_at < counted_from < last.issued_at  # from before its answer, after its request
    assert all(row.attempts == 1 for row in rows)  # never "not yet"
    earlier, later = rows[:2]
    assert later.sent_at is not None and earlier.issued_at is not None
    assert later.sent_at < earlier.issued_at + timedelta(seconds=gap)  # claimed before the gap ended...
    codes = erm_sandbox.device(device).codes  # ...sent after
    assert len(codes) == 3
    assert all(b.created_at - a.created_at >= timedelta(seconds=gap) for a, b in itertools.pairwise(codes))


async def test_a_code_asked_for_after_the_last_one_was_issued_is_claimed_as_the_gap_ends_not_at_a_tick(
        db: Database, erm: ErmBackend, erm_sandbox: ErmSandbox) -> None:
    """Nothing pumps here but the engine's own kicks: the second request, queued behind the gap of a code already
    issued, goes out because its queuing set one for the gap's end."""
    gap = 0.5
    erm_sandbox.clock, erm_sandbox.min_gap_seconds = SystemClock(), gap
    engine = IssuingEngine(db=db, erm=erm, settings=make_settings(PAYGBOT_MIN_GAP_SECONDS=gap), clock=SystemClock())
    try:
        device = erm_sandbox.devices[0].oem_item_id
        first = await engine.request(device, CodeKind.DAYS, 1)
        assert isinstance(first, Accepted)
        await issued(db, [first])
        second = await engine.request(device, CodeKind.DAYS, 2)
        assert isinstance(second, Accepted)
        earlier, later = await issued(db, [first, second])
    finally:
        await engine.close()
    assert later.attempts == 1
    codes = erm_sandbox.device(device).codes
    assert len(codes) == 2 and codes[1].created_at - codes[0].created_at >= timedelta(seconds=gap)


async def test_when_the_erm_says_not_yet_the_code_comes_later_once_and_the_gap_counts_from_answers(
        db: Database, erm: ErmBackend, erm_sandbox: ErmSandbox) -> None:
    """An ERM whose time before its commit falls away between two codes refuses the second as too soon: it is
    asked again later (one code, never two), and the gap counts from the answers alone for a while."""
    gap = 0.5
    erm_sandbox.clock, erm_sandbox.min_gap_seconds, erm_sandbox.latency = SystemClock(), gap, 0.4
    generate = erm_sandbox.generate

    def then_at_once(*args: Any, **kwargs: Any) -> Any:
        record = generate(*args, **kwargs)
        erm_sandbox.latency = 0.0  # the ERM's way in was slow for the first code only
        return record

    erm_sandbox.generate = then_at_once  # type: ignore[method-assign]
    engine = IssuingEngine(db=db, erm=erm, settings=make_settings(PAYGBOT_MIN_GAP_SECONDS=gap), clock=SystemClock())

    async def pumping() -> None:  # the bot's dispatch job: a retry is due at a time, not kicked
        while True:
            await engine.pump()
            await asyncio.sleep(0.1)

    pump = asyncio.create_task(pumping())
    try:
        device = erm_sandbox.devices[0].oem_item_id
        for _ in range(KNOWN):  # how long the ERM takes is known before the first code
            await erm.code_history(device, 0, 1)
        answers = [await engine.request(device, CodeKind.DAYS, 1) for _ in range(2)]
        assert all(isinstance(answer, Accepted) for answer in answers)
        earlier, later = await issued(db, answers)
        now = SystemClock().now()
        paused = engine.settlement.anticipation.answered(now - timedelta(seconds=1), now, 1.0, [1.0] * 10)
    finally:
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump
        await engine.close()
    assert (earlier.attempts, later.attempts) == (1, 2)  # the second refused once, then issued
    codes = erm_sandbox.device(device).codes
    assert len(codes) == 2 and codes[1].created_at - codes[0].created_at >= timedelta(seconds=gap)
    assert erm_sandbox.generations == 3  # asked three times, committed twice
    assert paused == timedelta(0)


async def test_the_sync_asks_for_the_next_page_while_it_writes_this_one_and_stops_cleanly() -> None:
    asked: list[int] = []
    closed: list[bool] = []

    async def pages() -> AsyncIterator[list[Any]]:
        try:
            for n in range(5):
                asked.append(n)
                await asyncio.sleep(0.01)
                yield [n]
        finally:
            closed.append(True)

    got: list[list[Any]] = []
    async with contextlib.aclosing(read_ahead(pages())) as ahead:
        async for page in ahead:
            got.append(page)
            await asyncio.sleep(0)
            assert len(asked) == len(got) + 1  # the next page is on its way while this one is written
            if len(got) == 2:
                break  # as when writing a page fails: the page on its way is given up, the pages closed
    assert got == [[0], [1]] and closed == [True] and len(asked) == 3


async def test_the_start_up_sync_asks_the_erm_before_the_bot_takes_its_first_update(
        erm_sandbox: ErmSandbox, erm_url: str, database_url: str, clock: ManualClock) -> None:
    """Agents who wrote while the bot was down find their devices' page on its way when their messages come."""
    erm_sandbox.latency = 0.2
    api = FakeBotApi(TOKEN)
    asked_before_the_first_poll: list[bool] = []
    confirm = api.confirm

    def first_poll(offset: int) -> None:  # (getUpdates confirms the updates seen before each poll)
        if not asked_before_the_first_poll:
            asked_before_the_first_poll.append(any("assignedItemsList" in call.path for call in erm_sandbox.calls))
        confirm(offset)

    api.confirm = first_poll  # type: ignore[method-assign]
    async with chatting(erm_sandbox, erm_url, database_url, clock, api=api):
        await eventually(lambda: asked_before_the_first_poll)
    assert asked_before_the_first_poll == [True]


@pytest.mark.agents(AGENT)
async def test_a_restart_registers_only_the_menus_that_changed(chat: Chat) -> None:
    services = chat.bot.services
    table, bot = chat.bot.application.bot_data[menus.TABLE], chat.bot.application.bot
    scope = {"type": "chat", "chat_id": AGENT.id}
    await menus.register_all(bot, table, services.people)
    assert chat.api.commands_for(scope)
    chat.api.command_lists.clear()  # forgotten by the stand-in: only a new setMyCommands brings it back
    await menus.register_all(bot, table, services.people)  # as at the next start: nothing changed
    assert not chat.api.commands_for(scope)
    await services.people.keep_language(await services.people.who(AGENT.id), "fr", chosen=True)
    await menus.register_all(bot, table, services.people)  # the agent's menu is now in French: sent again
    assert chat.api.commands_for(scope)

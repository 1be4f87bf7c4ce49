"""What the managers' dashboard reads from the ledger (``storage.ledger.dashboard``), on a small ledger whose
every answer is worked out by hand below, on SQLite and on PostgreSQL.

The devices (now is NOW; Alex and Bea are agents, Bea without a name):

=====  ==================  ==============================  =====  ========  ========  ================================
label  other ids           customer (phone +2547000000nn)  agent  credit    unlocked  plan
=====  ==================  ==============================  =====  ========  ========  ================================
DEV-A  ERM-A, OEM-A        Amina Wanjiru (01)              Alex   +1 day              active 1000, 400 paid (older one
                                                                                      repossessed); "Solar home system"
DEV-B  ERM-B               Baraka Otieno (02)              Bea    -5 days             active 800, 100 paid
DEV-C  ERM-C               —                                      -1 day
DEV-D  ERM-D               Chebet Wanjiru (03)             Alex   +10 days            "Solar TV 24"
DEV-E  ERM-E               Daudi Kamau (04)                Bea    -3 days   yes
DEV-F  ERM-F               Esther Auma (05)                Alex   -2 days             paid off
DEV-G  ERM-G               Faith Ruto (06)                 Bea    none                active since -7 days
DEV-H  ERM-H               —                                      none
DEV-I  ERM-I               Grace Mwangi (07)               —      +2 days   yes
DEV-J  ERM-J               Hassan Said (08)                Alex   now
DEV-K  ERM-K               Imani Juma (09)                 Bea    +3 days
DEV-L  ERM-L               Juma Kariuki (10)               Alex   none                active from +1 hour
DEV-M  ERM-M               Kamau Njeri (11)                Alex   none                active since -1 day
=====  ==================  ==============================  =====  ========  ========  ================================

Ending within 3 days: J (now), A. Past due: G and M (never given credit, on a plan since before now; by label),
then B (-5 days), C (-1 day; no customer). Not past due: E (unlocked), F (paid off), H (no plan), L (plan not
started).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from storage import ledger
from storage.db import Database
from storage.ledger.dashboard import SHOWS, DeviceRow
from storage.models import (
    CONFIRMATION_COPY,
    Approval,
    ApprovalStatus,
    CodeKind,
    CodeRequest,
    Device,
    Payment,
    PaymentStatus,
    Plan,
    PlanStatus,
    Role,
    Status,
)

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)
LABELS = [f"DEV-{letter}" for letter in "ABCDEFGHIJKLM"]
ENDING = ["DEV-J", "DEV-A"]
PAST_DUE = ["DEV-G", "DEV-M", "DEV-B", "DEV-C"]


@dataclass
class Seeded:
    devices: dict[str, int]
    """Device ids by label."""
    alex: int
    bea: int
    bea_telegram: int


CUSTOMERS = {  # label: (name, phone, agent)
    "DEV-A": ("Amina Wanjiru", "+254700000001", "alex"), "DEV-B": ("Baraka Otieno", "+254700000002", "bea"),
    "DEV-D": ("Chebet Wanjiru", "+254700000003", "alex"), "DEV-E": ("Daudi Kamau", "+254700000004", "bea"),
    "DEV-F": ("Esther Auma", "+254700000005", "alex"), "DEV-G": ("Faith Ruto", "+254700000006", "bea"),
    "DEV-I": ("Grace Mwangi", "+254700000007", None), "DEV-J": ("Hassan Said", "+254700000008", "alex"),
    "DEV-K": ("Imani Juma", "+254700000009", "bea"), "DEV-L": ("Juma Kariuki", "+254700000010", "alex"),
    "DEV-M": ("Kamau Njeri", "+254700000011", "alex"),
}
CREDIT = {"DEV-A": NOW + DAY, "DEV-B": NOW - 5 * DAY, "DEV-C": NOW - DAY, "DEV-D": NOW + 10 * DAY,
          "DEV-E": NOW - 3 * DAY, "DEV-F": NOW - 2 * DAY, "DEV-I": NOW + 2 * DAY, "DEV-J": NOW, "DEV-K": NOW + 3 * DAY}
DESCRIPTIONS = {"DEV-A": "Solar home system", "DEV-D": "Solar TV 24"}


def _plan(device_id: int, total: int, paid: int, started_at: datetime,
          status: PlanStatus = PlanStatus.ACTIVE) -> Plan:
    return Plan(device_id=device_id, total=Decimal(total), daily_price=Decimal(50), currency="KES", paid=Decimal(paid),
                status=status, started_at=started_at, ended_at=None if status is PlanStatus.ACTIVE else started_at + DAY)


async def seed(db: Database) -> Seeded:
    """The ledger of the module's table."""
    async with db.write() as session:
        alex = await ledger.put_person(session=session, telegram_id=1001, role=Role.AGENT, name="Alex", now=NOW)
        bea = await ledger.put_person(session=session, telegram_id=1002, role=Role.AGENT, name=None, now=NOW)
        agents = {"alex": alex.id, "bea": bea.id, None: None}
        devices: dict[str, int] = {}
        for label in LABELS:
            letter = label[-1]
            ids = [f"ERM-{letter}", label] + (["OEM-A"] if letter == "A" else [])
            device, _ = await ledger.add_device(session=session, ids=ids, now=NOW, label=label,
                                                description=DESCRIPTIONS.get(label))
            assert device.id is not None
            devices[label] = device.id
            device.credit_until = CREDIT.get(label)
            device.unlocked = label in ("DEV-E", "DEV-I")
            device.daily_price, device.currency = Decimal(50), "KES"
            session.add(device)
            if label in CUSTOMERS:
                name, phone, agent = CUSTOMERS[label]
                await ledger.put_customer(session=session, device=device, phone=phone, name=name,
                                          registered_by_id=agents[agent], now=NOW)
        for plan in (
            _plan(devices["DEV-A"], 500, 100, NOW - 300 * DAY, PlanStatus.REPOSSESSED),
            _plan(devices["DEV-A"], 1000, 400, NOW - 30 * DAY),
            _plan(devices["DEV-B"], 800, 100, NOW - 40 * DAY),
            _plan(devices["DEV-F"], 700, 700, NOW - 90 * DAY, PlanStatus.PAID_OFF),
            _plan(devices["DEV-G"], 900, 0, NOW - 7 * DAY),
            _plan(devices["DEV-L"], 900, 0, NOW + timedelta(hours=1)),
            _plan(devices["DEV-M"], 900, 0, NOW - DAY),
        ):
            await ledger.add_plan(session=session, plan=plan)
    assert alex.id is not None and bea.id is not None
    return Seeded(devices, alex.id, bea.id, bea.telegram_id)


async def listed(db: Database, **filters: object) -> tuple[list[str], int]:
    """The labels of the page ``device_list`` gives, and its total."""
    async with db.read() as session:
        rows, total = await ledger.dashboard.device_list(session=session, now=NOW, **filters)  # type: ignore[arg-type]
    return [row.label for row in rows], total


async def every_page(db: Database, size: int, **filters: object) -> tuple[list[str], set[int]]:
    """Every page of ``size`` one after the other, and the totals they gave."""
    labels: list[str] = []
    totals: set[int] = set()
    for offset in range(0, 20, size):
        page, total = await listed(db, offset=offset, limit=size, **filters)
        assert len(page) <= size
        labels += page
        totals.add(total)
    return labels, totals


# -- the list: what it shows ---------------------------------------------------------------------------------


async def test_all_the_devices_by_label_with_what_a_row_shows(db: Database) -> None:
    seeded = await seed(db)
    async with db.read() as session:
        rows, total = await ledger.dashboard.device_list(session=session, now=NOW)
    assert [row.label for row in rows] == LABELS and total == len(LABELS)
    by_label = {row.label: row for row in rows}
    assert by_label["DEV-A"] == DeviceRow(
        id=seeded.devices["DEV-A"], label="DEV-A", erm_id="ERM-A", customer="Amina Wanjiru", phone="+254700000001",
        agent_id=seeded.alex, credit_until=NOW + DAY, unlocked=False, daily_price=Decimal(50), currency="KES",
        plan_left=Decimal(600), paid_off=False)
    assert (by_label["DEV-B"].plan_left, by_label["DEV-B"].agent_id) == (Decimal(700), seeded.bea)
    assert (by_label["DEV-F"].paid_off, by_label["DEV-F"].plan_left) == (True, None)  # no active plan
    assert (by_label["DEV-C"].customer, by_label["DEV-C"].phone, by_label["DEV-C"].agent_id) == (None, None, None)
    assert by_label["DEV-E"].unlocked and by_label["DEV-H"].credit_until is None
    assert by_label["DEV-I"].agent_id is None and by_label["DEV-I"].customer == "Grace Mwangi"


async def test_credit_ending_soon_oldest_first(db: Database) -> None:
    await seed(db)
    assert await listed(db, show="ending") == (ENDING, 2)  # K ends at now + 3 days: not within them
    assert await listed(db, show="ending", ending_within=3 * DAY + timedelta(seconds=1)) == (
        ["DEV-J", "DEV-A", "DEV-K"], 3)  # I ends within them too, but is unlocked
    assert await listed(db, show="ending", ending_within=12 * timedelta(hours=1)) == (["DEV-J"], 1)


async def test_past_due_as_the_visits_say_it_without_needing_a_customer(db: Database) -> None:
    await seed(db)
    assert await listed(db, show="past_due") == (PAST_DUE, 4)
    async with db.read() as session:
        visits = await ledger.portfolio.visits(session=session, ended_before=NOW)
    assert sorted(visit.device for visit in visits) == sorted(set(PAST_DUE) - {"DEV-C"})  # C has no customer


async def test_one_agents_devices(db: Database) -> None:
    seeded = await seed(db)
    alex = ["DEV-A", "DEV-D", "DEV-F", "DEV-J", "DEV-L", "DEV-M"]
    assert await listed(db, agent_id=seeded.alex) == (alex, 6)
    assert await listed(db, agent_id=seeded.alex, show="ending") == (ENDING, 2)
    assert await listed(db, agent_id=seeded.alex, show="past_due") == (["DEV-M"], 1)
    assert await listed(db, agent_id=seeded.bea, show="past_due") == (["DEV-G", "DEV-B"], 2)
    assert await listed(db, agent_id=seeded.bea + seeded.alex + 100) == ([], 0)


async def test_an_unknown_show_is_refused(db: Database) -> None:
    with pytest.raises(ValueError, match="past_due"):
        await listed(db, show="overdue")


# -- the list: a page at a time ----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 3, 5])
async def test_pages_one_after_the_other_make_the_whole_list(db: Database, size: int) -> None:
    await seed(db)
    assert await every_page(db, size) == (LABELS, {len(LABELS)})
    assert await every_page(db, size, show="ending") == (ENDING, {2})
    # past due in two parts (never given credit, then by credit): pages that run across both
    assert await every_page(db, size, show="past_due") == (PAST_DUE, {4})
    assert await every_page(db, size, text="dev", show="past_due") == (PAST_DUE, {4})
    assert await every_page(db, size, text="wanjiru") == (["DEV-A", "DEV-D"], {2})


async def test_a_page_past_the_end_is_empty_and_still_counts(db: Database) -> None:
    await seed(db)
    assert await listed(db, offset=13) == ([], 13)
    assert await listed(db, offset=40, show="past_due") == ([], 4)
    assert await listed(db, offset=40, text="solar") == ([], 2)
    assert await listed(db, limit=0, text="solar") == ([], 2)
    assert await listed(db, text="nobody by that name") == ([], 0)


@pytest.mark.parametrize("show", SHOWS)
async def test_a_search_finding_every_device_lists_them_as_without_one(db: Database, show: str) -> None:
    """The two ways a page is read (narrowed by a search, counted as found; or all of them, from indexes in
    order) give the same pages."""
    await seed(db)
    for offset, limit in ((0, 50), (1, 2), (3, 4)):
        assert await listed(db, show=show, offset=offset, limit=limit) == await listed(
            db, show=show, offset=offset, limit=limit, text="DeV-")


# -- the list: searching ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "found"), [
    ("dev-c", ["DEV-C"]),  # the label, whatever the case
    ("ERM-B", ["DEV-B"]),  # the ERM id
    ("oem-a", ["DEV-A"]),  # another id
    ("EM-", ["DEV-A"]),  # part of an id
    ("solar", ["DEV-A", "DEV-D"]),  # the description
    ("tv 2", ["DEV-D"]),
    ("WANJIRU", ["DEV-A", "DEV-D"]),  # the customer's name
    ("faith r", ["DEV-G"]),
    ("700000003", ["DEV-D"]),  # part of the customer's phone
    ("0000001", ["DEV-A", "DEV-L", "DEV-M"]),  # +254700000001, +254700000010, +254700000011
    ("+2547000000", sorted(CUSTOMERS)),  # the start of every phone
    ("  amina  ", ["DEV-A"]),  # spaces around it are not part of it
])
async def test_search_by_every_kind_of_id_name_and_phone(db: Database, text: str, found: list[str]) -> None:
    await seed(db)
    assert await listed(db, text=text) == (found, len(found))


async def test_search_by_phone_exactly_or_with_text(db: Database) -> None:
    await seed(db)
    assert await listed(db, phone="+254700000002") == (["DEV-B"], 1)
    assert await listed(db, phone="+25470000000") == ([], 0)  # a phone is the whole number
    assert await listed(db, phone="+254700000002", text="solar") == (["DEV-A", "DEV-B", "DEV-D"], 3)
    assert await listed(db, phone="+254700000002", text="solar", show="past_due") == (["DEV-B"], 1)


async def test_search_with_a_filter_and_a_page(db: Database) -> None:
    seeded = await seed(db)
    assert await listed(db, text="dev", limit=4, offset=4) == (LABELS[4:8], 13)
    assert await listed(db, text="wanjiru", agent_id=seeded.bea) == ([], 0)
    assert await listed(db, text="dev", agent_id=seeded.bea, show="ending") == ([], 0)
    assert await listed(db, text="a", agent_id=seeded.alex, show="ending") == (ENDING, 2)


async def test_like_wildcards_in_the_text_are_plain_characters(db: Database) -> None:
    await seed(db)
    async with db.write() as session:
        for ids in (["ERM-P1", "PCT%50"], ["ERM-P2", "PCTX50"], ["ERM-U1", "UND_X"], ["ERM-U2", "UNDYX"],
                    ["ERM-S1", "BACK\\SLASH"], ["ERM-S2", "BACKSLASH"]):
            await ledger.add_device(session=session, ids=ids, now=NOW, label=ids[1])
    assert await listed(db, text="t%5") == (["PCT%50"], 1)
    assert await listed(db, text="%") == (["PCT%50"], 1)
    assert await listed(db, text="d_x") == (["UND_X"], 1)
    assert await listed(db, text="_") == (["UND_X"], 1)
    assert await listed(db, text="k\\s") == (["BACK\\SLASH"], 1)


# -- one device's story ------------------------------------------------------------------------------------


async def test_a_devices_story(db: Database) -> None:
    seeded = await seed(db)
    device_id = seeded.devices["DEV-A"]
    issued = []
    async with db.write() as session:
        for hours, status, credit in ((6, Status.DELIVERED, NOW - 2 * DAY), (5, Status.REFUSED, None),
                                      (4, Status.ISSUED, NOW + DAY), (3, Status.DELIVERED, None),
                                      (2, Status.FAILED, None), (1, Status.QUEUED, None)):
            at = NOW - timedelta(hours=hours)
            request = await ledger.add_request(session=session, request=CodeRequest(
                device_id=device_id, device_ref="DEV-A", kind=CodeKind.DAYS, days=1, status=status, not_before=at,
                created_at=at, issued_at=at if status in (Status.ISSUED, Status.DELIVERED) else None,
                credit_until=credit))
            issued.append(request.id)
        first, _ = await ledger.add_payment(session=session, payment=Payment(
            provider="mpesa", reference="R1", amount=Decimal(100), account="DEV-A", received_at=NOW - 3 * DAY,
            device_id=device_id, status=PaymentStatus.MATCHED))
        for reference, days in (("R2", 2), ("R3", 1)):
            await ledger.add_payment(session=session, payment=Payment(
                provider="mpesa", reference=reference, amount=Decimal(50), account="DEV-A",
                received_at=NOW - days * DAY, device_id=device_id, status=PaymentStatus.MATCHED))
        await ledger.add_payment_copy(session=session, payment=Payment(
            provider="daraja", reference="R1", amount=Decimal(100), account="DEV-A", received_at=NOW,
            device_id=device_id, status=PaymentStatus.MATCHED, reason=CONFIRMATION_COPY, duplicate_of=first.id))
        await ledger.add_payment(session=session, payment=Payment(  # another device's
            provider="mpesa", reference="R4", amount=Decimal(50), account="DEV-B", received_at=NOW,
            device_id=seeded.devices["DEV-B"], status=PaymentStatus.MATCHED))
    async with db.read() as session:
        story = await ledger.dashboard.device_story(session=session, device_id=device_id)
        short = await ledger.dashboard.device_story(session=session, device_id=device_id, limit=2)
        none = await ledger.dashboard.device_story(session=session, device_id=max(seeded.devices.values()) + 1)
    assert story is not None and short is not None and none is None
    assert (story.device.id, story.device.label) == (device_id, "DEV-A")
    assert story.customer is not None and story.customer.name == "Amina Wanjiru"
    assert story.aliases == ["DEV-A", "ERM-A", "OEM-A"]
    assert story.plan is not None and (story.plan.status, story.plan.total) == (PlanStatus.ACTIVE, Decimal(1000))
    assert [request.id for request in story.requests] == issued[::-1]  # newest first, whatever became of them
    assert [request.id for request in short.requests] == issued[:-3:-1]
    assert [payment.reference for payment in story.payments] == ["R3", "R2", "R1"]  # not the confirmation copy
    assert [payment.reference for payment in short.payments] == ["R3", "R2"]
    assert story.credit_timeline == [(NOW - timedelta(hours=6), NOW - 2 * DAY),
                                     (NOW - timedelta(hours=4), NOW + DAY)]  # issued with credit, oldest first
    assert short.credit_timeline == story.credit_timeline  # all of it, whatever the limit


async def test_a_story_without_customer_plan_or_history(db: Database) -> None:
    seeded = await seed(db)
    async with db.read() as session:
        story = await ledger.dashboard.device_story(session=session, device_id=seeded.devices["DEV-H"])
    assert story is not None and story.device.label == "DEV-H"
    assert (story.customer, story.plan, story.requests, story.payments, story.credit_timeline) == (
        None, None, [], [], [])
    assert story.aliases == ["DEV-H", "ERM-H"]


async def test_a_storys_plan_is_the_active_one_else_the_latest(db: Database) -> None:
    seeded = await seed(db)
    async with db.write() as session:
        await ledger.add_plan(session=session, plan=_plan(seeded.devices["DEV-F"], 300, 0, NOW - 200 * DAY,
                                                          PlanStatus.REPOSSESSED))
        await ledger.add_plan(session=session, plan=_plan(seeded.devices["DEV-H"], 300, 0, NOW - 200 * DAY,
                                                          PlanStatus.REPOSSESSED))
        await ledger.add_plan(session=session, plan=_plan(seeded.devices["DEV-H"], 400, 0, NOW - 100 * DAY,
                                                          PlanStatus.REPOSSESSED))
    async with db.read() as session:
        paid_off = await ledger.dashboard.device_story(session=session, device_id=seeded.devices["DEV-F"])
        taken = await ledger.dashboard.device_story(session=session, device_id=seeded.devices["DEV-H"])
    assert paid_off is not None and paid_off.plan is not None
    assert (paid_off.plan.status, paid_off.plan.total) == (PlanStatus.PAID_OFF, Decimal(700))
    assert taken is not None and taken.plan is not None
    assert (taken.plan.status, taken.plan.total) == (PlanStatus.REPOSSESSED, Decimal(400))


# -- what waits for the managers ---------------------------------------------------------------------------


async def test_kept_payments_newest_first_and_counted(db: Database) -> None:
    async with db.write() as session:
        for reference, hours, status, reversed_at in (
            ("K1", 3, PaymentStatus.UNMATCHED, None), ("K2", 1, PaymentStatus.UNMATCHED, None),
            ("M1", 0, PaymentStatus.MATCHED, None), ("P1", 0, PaymentStatus.PENDING, None),
            ("X1", 0, PaymentStatus.UNMATCHED, NOW),  # reversed while kept: nothing to assign
            ("K3", 2, PaymentStatus.UNMATCHED, None),
        ):
            await ledger.add_payment(session=session, payment=Payment(
                provider="mpesa", reference=reference, amount=Decimal(10), account="?", status=status,
                received_at=NOW - timedelta(hours=hours), reversed_at=reversed_at))
    async with db.read() as session:
        every, total = await ledger.dashboard.kept_payments(session=session)
        page, same = await ledger.dashboard.kept_payments(session=session, offset=1, limit=1)
        past, still = await ledger.dashboard.kept_payments(session=session, offset=3)
    assert ([payment.reference for payment in every], total) == (["K2", "K3", "K1"], 3)
    assert ([payment.reference for payment in page], same) == (["K3"], 3)
    assert (past, still) == ([], 3)


async def test_approvals_waiting_oldest_first_not_expired(db: Database) -> None:
    seeded = await seed(db)
    devices = seeded.devices

    def approval(label: str, hours_ago: int, expires_in: timedelta, by: int | None,
                 status: ApprovalStatus = ApprovalStatus.PENDING) -> Approval:
        return Approval(device_id=devices[label], requested_by_id=by, status=status,
                        created_at=NOW - timedelta(hours=hours_ago), expires_at=NOW + expires_in)

    async with db.write() as session:
        made = {}
        for name, row in {
            "alex's": approval("DEV-A", 2, timedelta(hours=1), seeded.alex),
            "bea's": approval("DEV-C", 3, timedelta(hours=2), seeded.bea),  # no customer; Bea has no name
            "nobody's": approval("DEV-F", 1, timedelta(hours=1), None),  # a plan paid off, no agent
            "expiring now": approval("DEV-B", 4, timedelta(0), seeded.alex),
            "expired": approval("DEV-B", 5, -timedelta(minutes=1), seeded.alex),
            "approved": approval("DEV-B", 6, timedelta(hours=1), seeded.alex, ApprovalStatus.APPROVED),
            "marked expired": approval("DEV-B", 7, -timedelta(hours=1), seeded.alex, ApprovalStatus.EXPIRED),
        }.items():
            made[name] = (await ledger.add_approval(session=session, approval=row)).id
    async with db.read() as session:
        waiting = await ledger.dashboard.waiting_approvals(session=session, now=NOW)
        later = await ledger.dashboard.waiting_approvals(session=session, now=NOW + timedelta(hours=1))
    assert [(w.approval.id, w.label, w.customer, w.requester) for w in waiting] == [
        (made["bea's"], "DEV-C", None, str(seeded.bea_telegram)),
        (made["alex's"], "DEV-A", "Amina Wanjiru", "Alex"),
        (made["nobody's"], "DEV-F", "Esther Auma", None),
    ]
    assert [w.approval.id for w in later] == [made["bea's"]]


async def test_the_ledger_holds_what_the_table_says(db: Database) -> None:
    """The module's table, read back: the tests above stand on it."""
    seeded = await seed(db)
    async with db.read() as session:
        devices = [await session.get(Device, seeded.devices[label]) for label in LABELS]
    assert [device.credit_until if device else None for device in devices] == [CREDIT.get(label) for label in LABELS]

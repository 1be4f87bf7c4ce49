"""The issuing engine: one object for the rest of the bot, composing the package's parts.

The ledger is the source of truth; this engine only pumps it. A request is written QUEUED before
anything else (:mod:`~bot.issuing.admission`); :meth:`IssuingEngine.pump` claims due requests
(SENDING, committed before the ERM is called), one device at a time and many devices at once
(:mod:`~bot.issuing.worker`), and records the outcome. Generation is exactly-once: a request whose
outcome is unknown (a timeout, or a crash while SENDING) is settled from the ERM's code history and
sent again only if no code was committed (:mod:`~bot.issuing.settlement`). Delivery is at-least-once
and may be retried (:mod:`~bot.issuing.handover`). Devices are one ledger row whatever id names them
(:mod:`~bot.issuing.devices`).
"""

from __future__ import annotations

from datetime import timedelta

from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.erm.backend import ErmBackend
from bot.erm.wire import GENERATIONS_AT_ONCE
from bot.issuing import limits
from bot.issuing.admission import Admission
from bot.issuing.devices import DeviceDirectory
from bot.issuing.handover import Handover
from bot.issuing.outcomes import Accepted, DeviceStatus, Notifier, PaymentApplied, PaymentHeld, Refused
from bot.issuing.ownership import Ownership
from bot.issuing.quota import Quota
from bot.issuing.settlement import SETTLE_GRACE, Settlement
from bot.issuing.worker import Worker
from storage.db import Database
from storage.models import CodeKind, CodeRequest, Device, Source

CLAIM_AHEAD = timedelta(milliseconds=50)
"""A device's next request is claimed this long before its gap ends, and leaves when it ends: the gap between
two codes is then the ERM's 6 s and its latency, without the pump's claim on top (about 10 ms)."""


class _Lane:
    """The worker as the admission's lane for a request that may go out at once, while the engine pumps by itself:
    an engine whose ``kick`` was replaced (a queue-only process, a test's pump steps) sends nothing on its own."""

    def __init__(self, engine: IssuingEngine) -> None:
        self.engine = engine

    def reserve(self, device_id: int) -> bool:
        engine = self.engine
        if "kick" in vars(engine) or type(engine).kick is not IssuingEngine.kick:
            return False
        return engine.worker.reserve(device_id)

    def release(self, device_id: int) -> None:
        self.engine.worker.release(device_id)

    def run_claimed(self, request: CodeRequest) -> None:
        self.engine.worker.run_claimed(request)


class IssuingEngine:
    """Holds every device to the limits and every request to exactly one code.

    A thin facade: each method hands on to the part that does the job. The parts call :meth:`kick`
    through the engine, so that an engine that must not pump (a queue-only process) overrides it once.
    """

    def __init__(
        self,
        *,
        db: Database,
        erm: ErmBackend,
        settings: Settings,
        clock: Clock | None = None,
        notify: Notifier | None = None,
        max_concurrency: int = GENERATIONS_AT_ONCE,
    ) -> None:
        self.db, self.erm, self.clock = db, erm, clock or SystemClock()
        self.limits = limits.Limits(
            min_gap=timedelta(seconds=settings.min_gap_seconds),
            daily_limit=settings.daily_code_limit,
            max_stacked_days=settings.max_stacked_days,
            tz=settings.tz,
            claim_ahead=CLAIM_AHEAD if self.clock.moves else timedelta(0),  # (a test's clock never gets there)
        )
        self.settle_delay = timedelta(seconds=settings.erm_timeout_seconds) + SETTLE_GRACE
        self.max_concurrency = max_concurrency
        quota = Quota(self.limits)
        self.devices = DeviceDirectory(db=db, erm=erm, clock=self.clock, quota=quota, kick=self._kick)
        self.ownership = Ownership(quota=quota, at_once=settings.unlock_when_paid == "auto")
        self.admission = Admission(db=db, clock=self.clock, quota=quota, devices=self.devices, kick=self._kick,
                                   ownership=self.ownership, lane=_Lane(self), settle_delay=self.settle_delay)
        self.handover = Handover(db=db, clock=self.clock, notify=notify)
        self.settlement = Settlement(db=db, erm=erm, clock=self.clock, rules=self.limits, devices=self.devices,
                                     handover=self.handover, kick=self._kick, max_concurrency=max_concurrency,
                                     call_deadline=settings.erm_timeout_seconds)
        self.worker = Worker(db=db, clock=self.clock, rules=self.limits, admission=self.admission,
                             settlement=self.settlement, handover=self.handover, max_concurrency=max_concurrency,
                             settle_delay=self.settle_delay)

    @property
    def notify(self) -> Notifier | None:
        return self.handover.notify

    def _kick(self) -> None:
        self.kick()  # looked up on each call: a subclass or a test may replace kick

    # -- asking for codes, paying -----------------------------------------------------------

    async def request(
        self,
        device_ref: str,
        kind: CodeKind,
        days: int | None = None,
        *,
        requested_by: int | None = None,
        chat_id: int | None = None,
        source: Source = Source.CHAT,
        key: str | None = None,
    ) -> Accepted | Refused:
        """Validate a request against every limit and queue it, or say why not and what is possible (``key``:
        what asked, so that asking again finds the same request)."""
        return await self.admission.request(device_ref, kind, days, requested_by=requested_by, chat_id=chat_id,
                                            source=source, key=key)

    async def apply_payment(
        self, payment_id: int, device_id: int, *, assigned_by: int | None = None, chat_id: int | None = None
    ) -> PaymentApplied | PaymentHeld:
        """Turn a stored payment into days for the device at its daily price, exactly once."""
        return await self.admission.apply_payment(payment_id, device_id, assigned_by=assigned_by, chat_id=chat_id)

    async def unlock_plan(self, plan_id: int, *, requested_by: int | None, chat_id: int | None,
                          approval_id: int | None = None) -> int | None:
        """Queue a paid-off plan's unlock code, once (the managers approved ``approval_id``)."""
        return await self.admission.unlock_plan(plan_id, requested_by=requested_by, chat_id=chat_id,
                                                approval_id=approval_id)

    # -- devices ----------------------------------------------------------------------------

    async def resolve_device(self, device_ref: str) -> int | Refused:
        """The ledger's device for ``device_ref``; a new id is looked up at the ERM first."""
        return await self.devices.resolve(device_ref)

    async def customer_view(self, customer_id: int) -> list[tuple[Device, int, CodeRequest | None]]:
        """A customer's devices with their days left and their last code, for /balance and /code."""
        return await self.devices.customer_view(customer_id)

    async def device(self, device_id: int) -> Device | None:
        return await self.devices.get(device_id)

    async def status(self, device_id: int, last: int = 3) -> DeviceStatus:
        """The device's figures as the limits see them now."""
        return await self.devices.status(device_id, last)

    async def sync_devices(self, page_size: int = 100) -> int:
        """Learn every assigned device and its ids from the ERM; returns how many were new or gained ids."""
        return await self.devices.sync(page_size)

    def expect_device_sync(self) -> None:
        """A device sync is about to start (the start-up one): ids asked for until it does wait for it too."""
        self.devices.expect_sync()

    # -- the pump ---------------------------------------------------------------------------

    def kick(self) -> None:
        """Pump now rather than at the next tick (a new request should not wait for the timer)."""
        self.worker.kick()

    async def pump(self) -> None:
        """Start every piece of work that is due: settlements, generations, deliveries, prepaid days."""
        await self.worker.pump()

    async def wait_told(self, request_id: int, timeout: float) -> bool:
        """Wait until the people of a request have been told its outcome, or at least until the outcome is
        known. False when the ERM has not answered within ``timeout``."""
        return await self.handover.wait_told(request_id, timeout)

    @property
    def waiting_told(self) -> int:
        """How many askers are waiting for their request's outcome right now (:meth:`wait_told`)."""
        return self.handover.waiting

    async def drain(self) -> None:
        """Wait until every task started so far, and the ones they started, has finished."""
        await self.worker.drain()

    async def close(self) -> None:
        """Stop taking work and let what is in hand finish (the ledger keeps the rest)."""
        await self.devices.finish_sync()
        await self.worker.close()

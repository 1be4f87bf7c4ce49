"""What a manager does in the dashboard: assign a payment kept for review, approve or reject a code. The same
services and ledger transactions as the chat's /assign and Approve / Reject buttons, so each happens exactly
once however often it is tapped, in the dashboard or the chat; the answer is the refreshed list with one
sentence saying what became of it."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot import decisions, exports
from bot.decisions import Carried
from bot.erm.backend import check_product_id
from bot.issuing import PaymentApplied, PaymentHeld, Refused
from dashboard import pages
from dashboard.web import Dashboard, Viewer, form_of, ticketed
from storage.models import PaymentStatus


def _number(value: str | None) -> int | None:
    return int(value) if value is not None and value.isascii() and value.isdigit() and len(value) <= 18 else None


async def assign(board: Dashboard, request: Request, viewer: Viewer) -> Response:
    """A kept payment becomes days for the device typed (resolved at the ERM when new to the ledger)."""
    services, texts = board.services, viewer.texts
    form = await form_of(request)
    payment_id, typed = _number(form.get("payment_id")), form.get("device")
    device = (typed or "").strip()
    try:
        check_product_id(device)
    except ValueError:
        return await pages.payments(board, request, viewer, note=texts.bad_device)
    payment = await services.payments.get(payment_id) if payment_id is not None else None
    if payment is None or payment.id is None:
        return await pages.payments(board, request, viewer, note=texts.dashboard_not_found)
    if payment.status is PaymentStatus.MATCHED:
        return await pages.payments(board, request, viewer, note=texts.dashboard_payment_gone(payment.reference))
    known = await services.engine.resolve_device(device)
    if isinstance(known, Refused):
        return await pages.payments(board, request, viewer, note=texts.refused(
            known.reason.value, device, words=known.words, tz=services.settings.tz))
    outcome = await services.payments.assign(payment.id, known, manager=viewer.person,
                                             chat_id=viewer.person.telegram_id)
    found = await services.engine.device(known)
    label = found.label if found is not None else device
    if isinstance(outcome, PaymentApplied):
        note = texts.dashboard_payment_gone(payment.reference) if outcome.duplicate else \
            texts.dashboard_assigned(payment.reference, label, outcome.days)
    elif isinstance(outcome, PaymentHeld):
        note = texts.dashboard_assign_held(payment.reference, label, outcome.reason.value)
    else:
        note = texts.dashboard_assign_pending(payment.reference)
    return await pages.payments(board, request, viewer, note=note)


async def decide(board: Dashboard, request: Request, viewer: Viewer) -> Response:
    """Approve or reject a waiting code: the first decision wins, in the dashboard or the chat."""
    texts = viewer.texts
    form = await form_of(request)
    approval_id, choice = _number(form.get("approval_id")), form.get("approve")
    if approval_id is None or choice not in ("yes", "no"):
        return await pages.approvals(board, request, viewer, note=texts.stale_button)
    approved = choice == "yes"
    outcome = await decisions.decide(board.bot, board.services, viewer.person, approval_id, approved)
    if outcome.carried is Carried.DECIDED:
        note = texts.approval_decided(approved, outcome.decider, outcome.device)
    elif outcome.carried is Carried.ALREADY and outcome.approval is not None:
        note = texts.approval_already(outcome.decider, outcome.approval.status.value)
    elif outcome.carried is Carried.EXPIRED:
        note = texts.approval_too_late
    elif outcome.carried is Carried.NOT_NEEDED:
        note = texts.unlock_not_needed(outcome.device)
    else:
        note = texts.stale_button
    return await pages.approvals(board, request, viewer, note=note)


async def ticket(board: Dashboard, request: Request, viewer: Viewer) -> Response:
    """A download ticket for an export (its URL and file name), for Telegram's own download (``downloadFile``):
    Telegram's app fetches a plain URL, without the session's header."""
    form = await form_of(request)
    kind = form.get("kind", "")
    asked = pages.export_asked(board, kind, form)
    if asked is None:
        return JSONResponse({"message": viewer.texts.dashboard_not_found}, status_code=404)
    if isinstance(asked, str):
        return JSONResponse({"message": getattr(viewer.texts, asked)}, status_code=400)
    params = [(key, form[key]) for key in ("from", "to") if kind == "ledger" and form.get(key)]
    path = ticketed(f"/app/export/{kind}", params)
    signed = urlencode({"ticket": board.sessions.ticket(viewer.person.telegram_id, path)})
    url = f"{board.public_base(request)}{path}{'&' if '?' in path else '?'}{signed}"
    return JSONResponse({"url": url, "file_name": exports.filename(kind, *asked)},
                        headers={"Cache-Control": "no-store"})

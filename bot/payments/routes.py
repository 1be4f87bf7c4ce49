"""The HTTP side of money in: ``POST /payments`` (signed; a payment, or a reversal of one) and ``POST /payments/mpesa/<PAYGBOT_MPESA_PATH>``
(Daraja C2B), as Starlette routes that the bot's HTTP app mounts.

A payment is stored before the answer (2xx: it is in the ledger; 503: the sender retries), then matched
and applied in the background.
"""

from __future__ import annotations

import hmac
import logging

from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot import logs
from bot.config import Settings
from bot.payments.parsing import BadPayment, ReversalIncoming, parse_daraja, parse_webhook, signature_ok
from bot.payments.service import Payments
from bot.payments.values import Incoming
from bot.plans.reversals import NotReversed, Unreversed, reverse
from storage.models import Payment

log = logging.getLogger("paygbot.payments")

SIGNATURE_HEADER = "X-Paygbot-Signature"
MAX_BODY = 64 * 1024
DARAJA_ACCEPTED = {"ResultCode": 0, "ResultDesc": "Accepted"}


async def _body(request: Request) -> bytes:
    """The raw body, refusing more than ``MAX_BODY`` bytes without reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise _TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


class _TooLarge(Exception):
    pass


def _keep_out_of_logs(settings: Settings) -> None:
    """The webhook secret and the M-Pesa path are redacted from every log line, also uvicorn's access
    lines (off by default, but a logging configuration can turn them on: the path is in them)."""
    for value in (settings.webhook_secret, settings.mpesa_path):
        if value is not None:
            logs.register_secret(value.get_secret_value())
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(existing, logs.RedactSecrets) for existing in access.filters):
        access.addFilter(logs.RedactSecrets())


def payment_routes(payments: Payments, settings: Settings) -> list[Route]:
    """``POST /payments`` (signed) and ``POST /payments/mpesa/<PAYGBOT_MPESA_PATH>`` (Daraja C2B)."""
    secret = settings.webhook_secret.get_secret_value().encode() if settings.webhook_secret else None
    mpesa_path = settings.mpesa_path.get_secret_value().encode() if settings.mpesa_path else None
    _keep_out_of_logs(settings)
    if secret is None:
        log.warning("PAYGBOT_WEBHOOK_SECRET is not set: every POST /payments is refused")

    async def store(incoming: Incoming) -> tuple[Payment, bool] | None:
        try:
            payment, new = await payments.record(incoming)
        except SQLAlchemyError as exc:
            log.error("payment %s could not be stored (%s); the sender will retry", incoming.reference,
                      type(exc).__name__)
            return None
        if new:
            payments.process_soon(payment)
        return payment, new

    async def webhook(request: Request) -> JSONResponse:
        """A payment from a provider, signed with PAYGBOT_WEBHOOK_SECRET."""
        try:
            body = await _body(request)
        except _TooLarge:
            return JSONResponse({"error": "the body is too large"}, status_code=413)
        if secret is None or not signature_ok(secret, body, request.headers.get(SIGNATURE_HEADER)):
            log.warning("POST /payments from %s refused: missing or wrong signature",
                        request.client.host if request.client else "?")
            return JSONResponse({"error": "missing or wrong signature"}, status_code=401)
        try:
            incoming = parse_webhook(body)
        except BadPayment as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        if isinstance(incoming, ReversalIncoming):
            return await take_back(incoming)
        stored = await store(incoming)
        if stored is None:
            return JSONResponse({"error": "the ledger is unavailable; try again"}, status_code=503)
        payment, new = stored
        return JSONResponse({"status": "accepted" if new else "duplicate", "reference": payment.reference})

    async def take_back(incoming: ReversalIncoming) -> JSONResponse:
        """A signed reversal: applied before the answer, which says what it did (or why nothing changed)."""
        try:
            done = await reverse(payments.db, payments.clock, incoming.reverses,
                                 reversal_reference=incoming.reference, reason=incoming.reason)
        except SQLAlchemyError as exc:
            log.error("reversal %s could not be stored (%s); the sender will retry", incoming.reference,
                      type(exc).__name__)
            return JSONResponse({"error": "the ledger is unavailable; try again"}, status_code=503)
        answer = {"reference": incoming.reference, "reverses": incoming.reverses}
        if isinstance(done, NotReversed):
            if done.why is Unreversed.UNKNOWN:
                return JSONResponse({**answer, "error": "no payment has that reference; nothing changed"},
                                    status_code=404)
            if done.why is Unreversed.REFERENCE_USED:
                return JSONResponse({**answer, "error": "this reference reversed another payment; nothing changed"},
                                    status_code=409)
            return JSONResponse({**answer, "status": "duplicate", "detail": "reversed already; nothing changed"})
        assert done.payment.id is not None
        payments.tell_soon(done.payment.id)
        return JSONResponse({**answer, "status": "reversed", "cancelled_days": done.reversal.cancelled_days,
                             "owed": str(done.reversal.owed)})

    async def daraja(request: Request) -> JSONResponse:
        """A Safaricom M-Pesa C2B confirmation, at the secret path."""
        given = request.path_params.get("secret", "")
        if mpesa_path is None or not hmac.compare_digest(mpesa_path, given.encode("utf-8", "replace")):
            return JSONResponse({"error": "not found"}, status_code=404)
        try:
            body = await _body(request)
        except _TooLarge:
            return JSONResponse({"ResultCode": 1, "ResultDesc": "Rejected: the body is too large"}, status_code=413)
        try:
            incoming = parse_daraja(body)
        except BadPayment as exc:
            return JSONResponse({"ResultCode": 1, "ResultDesc": f"Rejected: {exc}"}, status_code=400)
        if await store(incoming) is None:
            return JSONResponse({"ResultCode": 1, "ResultDesc": "Rejected: try again"}, status_code=503)
        return JSONResponse(DARAJA_ACCEPTED)

    return [
        Route("/payments", webhook, methods=["POST"]),
        Route("/payments/mpesa/{secret}", daraja, methods=["POST"]),
    ]

"""Webhooks: each audit event goes, as a signed JSON POST, to every enabled webhook whose
event patterns match its action.

- An audit row saved queues one ``WebhookDelivery`` per matching webhook in the same
  transaction, and the delivery task (``vdi.deliver_webhook``, by name) once it commits.
- The worker (``vdi.worker.webhooks``) claims a delivery for one attempt with a
  compare-and-set (``status=pending AND attempts=n``), so a duplicate message sends nothing.
  A failed attempt is tried again after ``backoff(n)`` seconds, at most
  ``VDI_WEBHOOK_MAX_ATTEMPTS`` times; beat's sweep re-sends what a lost message left behind.
- Signature, for receivers: header ``X-VDI-Signature: t=<unix seconds>,v1=<hex>`` where hex
  is HMAC-SHA256 with the webhook's secret over ``"<t>.<raw body>"``. A receiver recomputes
  it (constant-time compare), refuses a ``t`` more than ``SIGNATURE_TOLERANCE`` seconds from
  its clock (an old message replayed), and may drop an ``X-VDI-Delivery`` id it has already
  seen (a retry that arrived twice). ``verify`` here is the reference.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import json
import logging
import time
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from vdi import task_names
from vdi.models import AuditEvent, Webhook, WebhookDelivery
from vdi.services import audit, dispatch
from vdi.services.access import User

log = logging.getLogger(__name__)

QUEUE = "vdi"  # any worker: deliveries need no hypervisor
SIGNATURE_HEADER = "X-VDI-Signature"
DELIVERY_HEADER = "X-VDI-Delivery"
EVENT_HEADER = "X-VDI-Event"
SIGNATURE_TOLERANCE = 300  # seconds a receiver should accept between t= and its clock


def matches(webhook: Webhook, action: str) -> bool:
    return any(fnmatch.fnmatchcase(action, pattern) for pattern in webhook.patterns)


def payload_of(event: AuditEvent) -> dict[str, Any]:
    return {
        "event": event.action,
        "audit_id": event.pk,
        "created_at": event.created_at.isoformat() if event.created_at else None,
        "actor": {"id": event.actor_id, "username": event.actor_name or None},
        "target": {"type": event.target_type, "id": event.target_id,
                   "repr": event.target_repr} if event.target_type else None,
        "source_address": event.source_address,
        "details": event.details,
    }


def queue_for(event: AuditEvent) -> list[WebhookDelivery]:
    """A delivery for each enabled webhook that asks for the event's action, sent once the
    transaction that wrote the event commits."""
    deliveries = [
        WebhookDelivery(webhook=hook, audit_event=event, event=event.action,
                        payload=payload_of(event), next_try_at=timezone.now())
        for hook in Webhook.objects.filter(enabled=True) if matches(hook, event.action)
    ]
    if not deliveries:
        return []
    created = WebhookDelivery.objects.bulk_create(deliveries)
    for delivery in created:
        transaction.on_commit(partial(send, delivery.pk, 0))
    return created


def send(delivery_id: int, attempts: int) -> None:
    """Publish the delivery's next attempt. A broker that does not answer leaves the delivery
    pending: the sweep sends it later (never an error for the request that caused it)."""
    try:
        dispatch.send(task_names.DELIVER_WEBHOOK, (delivery_id, attempts), QUEUE)
    except Exception as exc:  # the broker's errors have many types (kombu, redis, OSError)
        log.warning("webhook delivery %s not queued (the sweep will): %s", delivery_id, exc)


def retry_now(actor: User, deliveries: list[WebhookDelivery],
              source_address: str | None = None) -> int:
    """An administrator's "retry now": one more attempt at once, even after the last one
    failed. Deliveries being sent at this moment are left alone."""
    count = 0
    for delivery in deliveries:
        with transaction.atomic():
            moved = WebhookDelivery.objects.filter(
                pk=delivery.pk, status__in=(WebhookDelivery.Status.PENDING,
                                            WebhookDelivery.Status.FAILED),
            ).update(status=WebhookDelivery.Status.PENDING, next_try_at=timezone.now())
            if moved != 1:
                continue
            audit.record(actor, "webhook.retry", delivery, source_address,
                         webhook=delivery.webhook.name, attempts=delivery.attempts)
            transaction.on_commit(partial(send, delivery.pk, delivery.attempts))
            count += 1
    return count


def backoff(attempts: int) -> int:
    """Seconds after the ``attempts``-th failed attempt: BACKOFF, twice that, four times... up
    to VDI_WEBHOOK_BACKOFF_MAX."""
    return int(min(settings.WEBHOOK_BACKOFF * 2 ** max(attempts - 1, 0),
                   settings.WEBHOOK_BACKOFF_MAX))


# --- signing ----------------------------------------------------------------------------------
def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return mac.hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The ``X-VDI-Signature`` header's value for ``body``."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={signature(secret, t, body)}"


def verify(secret: str, header: str, body: bytes, now: float | None = None,
           tolerance: int = SIGNATURE_TOLERANCE) -> bool:
    """What a receiver does: the header's t= is recent and one of its v1= matches."""
    parts = [p.partition("=") for p in header.split(",")]
    stamps = [v for k, _, v in parts if k.strip() == "t"]
    candidates = [v.strip() for k, _, v in parts if k.strip() == "v1"]
    if len(stamps) != 1 or not stamps[0].strip().isdigit() or not candidates:
        return False
    t = int(stamps[0])
    if abs((time.time() if now is None else now) - t) > tolerance:
        return False
    expected = signature(secret, t, body)
    return any(hmac.compare_digest(expected, c) for c in candidates)


def body_of(delivery: WebhookDelivery) -> bytes:
    """The exact bytes sent (and signed): compact JSON with sorted keys."""
    payload = {**delivery.payload, "delivery_id": delivery.pk}
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def sweep(now: datetime) -> list[int]:
    """Beat: send again what a lost message left behind: pending deliveries more than a
    sweep interval past due, and attempts whose worker died (their hold ran out). Returns
    the deliveries sent."""
    died = list(WebhookDelivery.objects.filter(
        status=WebhookDelivery.Status.SENDING, next_try_at__lt=now).values_list("pk", flat=True))
    WebhookDelivery.objects.filter(
        pk__in=died, status=WebhookDelivery.Status.SENDING, next_try_at__lt=now,
    ).update(status=WebhookDelivery.Status.PENDING, next_try_at=now)
    late = now - timedelta(seconds=settings.WEBHOOK_SWEEP_INTERVAL)
    due = WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING).filter(
        Q(next_try_at__lt=late) | Q(pk__in=died))
    sent = []
    for pk, attempts in due.values_list("pk", "attempts"):
        send(pk, attempts)
        sent.append(pk)
    return sent

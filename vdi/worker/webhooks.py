"""One attempt at a webhook delivery: claim it (compare-and-set), POST the signed body
(``vdi.worker.webhook_http``: to allowed addresses only), record the answer. The task
(``vdi.tasks.deliver_webhook``) retries through Celery after the backoff this returns.
Rules and signature: ``vdi.services.webhooks``."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from vdi.models import WebhookDelivery
from vdi.services import webhooks
from vdi.worker.webhook_http import Answer, post

log = logging.getLogger(__name__)
S = WebhookDelivery.Status
USER_AGENT = "vdi-portal-webhooks/1"


@dataclass(frozen=True)
class Outcome:
    result: str  # delivered, retry, failed, skipped (another attempt has it, or done)
    retry_in: int = 0


def attempt(delivery_id: int, attempts: int) -> Outcome:
    """Attempt number ``attempts + 1``, if the delivery still waits for exactly that one."""
    now = timezone.now()
    hold = now + timedelta(seconds=settings.WEBHOOK_TIMEOUT + 60)
    if WebhookDelivery.objects.filter(pk=delivery_id, status=S.PENDING, attempts=attempts
                                      ).update(status=S.SENDING, next_try_at=hold) != 1:
        return Outcome("skipped")
    delivery = WebhookDelivery.objects.select_related("webhook").get(pk=delivery_id)
    hook = delivery.webhook
    body = webhooks.body_of(delivery)
    answer = Answer(None, "the webhook is disabled", final=True) if not hook.enabled else post(
        hook.url, body, {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            webhooks.SIGNATURE_HEADER: webhooks.sign(hook.secret, body),
            webhooks.DELIVERY_HEADER: str(delivery.pk),
            webhooks.EVENT_HEADER: delivery.event,
        })
    return record(delivery, attempts, answer)


def record(delivery: WebhookDelivery, attempts: int, answer: Answer) -> Outcome:
    """The attempt's answer on the delivery: delivered, failed for good, or due again."""
    hook, done, code = delivery.webhook, attempts + 1, answer.code
    mine = WebhookDelivery.objects.filter(pk=delivery.pk, status=S.SENDING, attempts=attempts)
    if code is not None and 200 <= code < 300:
        mine.update(status=S.DELIVERED, attempts=done, response_code=code, error="",
                    delivered_at=timezone.now(), next_try_at=None)
        log.info("webhook %s: %s delivered (HTTP %s)", hook.name, delivery.event, code)
        return Outcome("delivered")
    error = answer.error or f"HTTP {code}"
    if answer.final or done >= settings.WEBHOOK_MAX_ATTEMPTS:
        mine.update(status=S.FAILED, attempts=done, response_code=code, error=error,
                    next_try_at=None)
        log.warning("webhook %s: %s failed after %s attempts: %s", hook.name, delivery.event,
                    done, error)
        return Outcome("failed")
    wait = webhooks.backoff(done)
    mine.update(status=S.PENDING, attempts=done, response_code=code, error=error,
                next_try_at=timezone.now() + timedelta(seconds=wait))
    log.info("webhook %s: %s attempt %s failed (%s), again in %s s", hook.name,
             delivery.event, done, error, wait)
    return Outcome("retry", wait)

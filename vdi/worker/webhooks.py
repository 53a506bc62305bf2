"""One attempt at a webhook delivery: claim it (compare-and-set), POST the signed body, record
the answer. The task (``vdi.tasks.deliver_webhook``) retries through Celery after the backoff
this returns. Rules and signature: ``vdi.services.webhooks``."""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from vdi.models import WebhookDelivery
from vdi.services import webhooks

log = logging.getLogger(__name__)
S = WebhookDelivery.Status
USER_AGENT = "vdi-portal-webhooks/1"


@dataclass(frozen=True)
class Outcome:
    result: str  # delivered, retry, failed, skipped (another attempt has it, or done)
    retry_in: int = 0


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer (3xx), not an invitation to send the payload elsewhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int | None, str]:
    """(HTTP status, error in words); status None when no answer came. Only http(s) URLs
    (the model validates them; a row written around it is refused here too)."""
    if not url.lower().startswith(("http://", "https://")):
        return None, "not an http:// or https:// URL"
    request = urllib.request.Request(  # noqa: S310  (scheme checked above)
        url, data=body, method="POST", headers=headers)
    try:
        with _opener.open(request, timeout=settings.WEBHOOK_TIMEOUT) as response:
            response.read(65536)
            return int(response.status), ""
    except urllib.error.HTTPError as exc:
        return int(exc.code), f"HTTP {exc.code} {exc.reason}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return None, f"no answer: {reason}"[:500]


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
    code, error = (None, "the webhook is disabled") if not hook.enabled else post(
        hook.url, body, {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            webhooks.SIGNATURE_HEADER: webhooks.sign(hook.secret, body),
            webhooks.DELIVERY_HEADER: str(delivery.pk),
            webhooks.EVENT_HEADER: delivery.event,
        })
    done = attempts + 1
    mine = WebhookDelivery.objects.filter(pk=delivery_id, status=S.SENDING, attempts=attempts)
    if code is not None and 200 <= code < 300:
        mine.update(status=S.DELIVERED, attempts=done, response_code=code, error="",
                    delivered_at=timezone.now(), next_try_at=None)
        log.info("webhook %s: %s delivered (HTTP %s)", hook.name, delivery.event, code)
        return Outcome("delivered")
    error = error or f"HTTP {code}"
    if done >= settings.WEBHOOK_MAX_ATTEMPTS or not hook.enabled:
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

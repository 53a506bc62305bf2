"""Webhooks: audit events of the kinds a webhook asks for reach a local receiver (127.0.0.1,
which VDI_WEBHOOK_ALLOWED_NETWORKS allows) as signed JSON, through the broker and the delivery
task, retried with Celery after a failed attempt, given up after the last one, and retried by
hand from the admin."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import timedelta
from ipaddress import ip_network
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from tests.support import drain, purge, signed_in
from tests.webhook_helpers import Receiver
from vdi import tasks
from vdi.models import AuditEvent, Webhook, WebhookDelivery
from vdi.services import audit, webhooks
from vdi.services.claims import claim_desktop

SECRET = "receiver-shared-secret-0123456789"
S = WebhookDelivery.Status


@pytest.fixture
def receiver(settings):
    """Receivers on 127.0.0.1, which the operator has allowed webhooks to reach (loopback is
    refused by default: tests/unit/test_webhook_targets.py)."""
    settings.WEBHOOK_ALLOWED_NETWORKS = (ip_network("127.0.0.0/8"),)
    made: list[Receiver] = []

    def make(*answers: int) -> Receiver:
        made.append(Receiver(*answers))
        return made[-1]

    yield make
    for r in made:
        r.close()


@pytest.fixture
def webhook_queue():
    purge(webhooks.QUEUE)
    yield webhooks.QUEUE
    purge(webhooks.QUEUE)


def verified(headers: dict[str, str], body: bytes, secret: str = SECRET) -> Any:
    """What a receiver does with a delivery, written from the README, not from our code:
    recompute the HMAC over "<t>.<body>", compare in constant time, refuse an old t."""
    fields = dict(part.split("=", 1) for part in headers["x-vdi-signature"].split(","))
    t = int(fields["t"])
    assert abs(time.time() - t) < 300, "a replay of an old delivery"
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(expected, fields["v1"]), "bad signature"
    return json.loads(body)


def run_queued(queue: str) -> list[str]:
    """Run, as the worker would, each delivery task the broker holds."""
    results = []
    for message in drain(queue):
        assert message["task"] == "vdi.deliver_webhook"
        results.append(tasks.deliver_webhook.apply(args=message["args"]).get())
    return results


def test_a_claim_reaches_the_receiver_signed_and_a_500_is_retried(
        owner, pool, host, empty_queue, webhook_queue, receiver,
        django_capture_on_commit_callbacks):
    endpoint = receiver(500, 200)
    hook = Webhook.objects.create(name="siem", url=endpoint.url, events="desktop.claim",
                                  secret=SECRET)
    Webhook.objects.create(name="accounts only", url=endpoint.url, events="user.* group.*")
    Webhook.objects.create(name="off", url=endpoint.url, events="*", enabled=False)

    with django_capture_on_commit_callbacks(execute=True):
        desktop = claim_desktop(owner, pool, "192.0.2.7")
    delivery = WebhookDelivery.objects.get()  # only the matching, enabled webhook
    assert (delivery.webhook, delivery.event, delivery.status) == (hook, "desktop.claim",
                                                                   S.PENDING)

    assert run_queued(webhook_queue) == ["delivered"]  # Celery retried the 500 at once (eager)
    assert len(endpoint.got) == 2
    first, second = (verified(headers, body) for headers, body in endpoint.got)
    assert first == second  # the same delivery, signed again at each attempt
    assert first["event"] == "desktop.claim" and first["delivery_id"] == delivery.pk
    assert first["target"] == {"type": "vdi.desktop", "id": str(desktop.pk),
                               "repr": str(desktop)}
    assert first["actor"] == {"id": owner.pk, "username": "owner"}
    assert first["source_address"] == "192.0.2.7" and first["details"]["pool"] == "Unit pool"
    headers = endpoint.got[1][0]
    assert headers["x-vdi-delivery"] == str(delivery.pk)
    assert headers["x-vdi-event"] == "desktop.claim"
    assert headers["content-type"] == "application/json"

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code) == (S.DELIVERED, 2, 200)
    assert delivery.error == "" and delivery.delivered_at is not None

    # The broker delivering the first message again sends nothing more.
    assert tasks.deliver_webhook.apply(args=(delivery.pk, 0)).get() == "skipped"
    assert len(endpoint.got) == 2


def test_the_backoff_is_exponential_and_recorded(owner, webhook_queue, receiver, settings,
                                                 django_capture_on_commit_callbacks):
    settings.WEBHOOK_BACKOFF, settings.WEBHOOK_BACKOFF_MAX = 10, 60
    assert [webhooks.backoff(n) for n in range(1, 6)] == [10, 20, 40, 60, 60]
    endpoint = receiver(503)
    Webhook.objects.create(name="down", url=endpoint.url, events="test.*", secret=SECRET)
    with django_capture_on_commit_callbacks(execute=True):
        audit.record(owner, "test.event", None)
    delivery = WebhookDelivery.objects.get()
    from vdi.worker.webhooks import attempt

    before = timezone.now()
    outcome = attempt(delivery.pk, 0)  # one attempt, as the task's first run makes it
    assert (outcome.result, outcome.retry_in) == ("retry", 10)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code) == (S.PENDING, 1, 503)
    assert delivery.error.startswith("HTTP 503")
    assert delivery.next_try_at is not None
    assert 9 <= (delivery.next_try_at - before).total_seconds() <= 12
    assert attempt(delivery.pk, 1).retry_in == 20


def test_deliveries_stop_after_the_last_attempt(owner, webhook_queue, receiver, settings,
                                                django_capture_on_commit_callbacks):
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    endpoint = receiver(500)
    Webhook.objects.create(name="broken", url=endpoint.url, events="*", secret=SECRET)
    with django_capture_on_commit_callbacks(execute=True):
        audit.record(owner, "desktop.start", None)
    assert run_queued(webhook_queue) == ["failed"]
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.response_code) == (S.FAILED, 3, 500)
    assert delivery.next_try_at is None and len(endpoint.got) == 3


def test_an_unreachable_receiver_is_an_error_in_words(owner, webhook_queue, settings,
                                                      django_capture_on_commit_callbacks):
    from vdi.testing.processes import free_port

    settings.WEBHOOK_MAX_ATTEMPTS = 1
    settings.WEBHOOK_ALLOWED_NETWORKS = (ip_network("127.0.0.0/8"),)  # the operator's choice
    Webhook.objects.create(name="nobody", url=f"http://127.0.0.1:{free_port()}/", events="*")
    with django_capture_on_commit_callbacks(execute=True):
        audit.record(owner, "desktop.stop", None)
    assert run_queued(webhook_queue) == ["failed"]
    delivery = WebhookDelivery.objects.get()
    assert delivery.response_code is None and "no answer" in delivery.error
    assert "refused" in delivery.error.lower()


def test_retry_now_from_the_admin(admin_user, owner, webhook_queue, receiver,
                                  django_capture_on_commit_callbacks):
    endpoint = receiver(200)
    hook = Webhook.objects.create(name="later", url=endpoint.url, events="desktop.* webhook.*",
                                  secret=SECRET)
    failed = WebhookDelivery.objects.create(
        webhook=hook, event="desktop.reset", payload={"event": "desktop.reset"},
        status=S.FAILED, attempts=8, response_code=500, error="HTTP 500")
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in(admin_user).post("/admin/vdi/webhookdelivery/", {
            "action": "retry_now", "_selected_action": [failed.pk]})
    assert response.status_code == 302
    failed.refresh_from_db()
    assert failed.status == S.PENDING
    assert AuditEvent.objects.filter(action="webhook.retry", target_id=str(failed.pk),
                                     actor=admin_user).exists()
    # The admin's own audit row is an event the webhook asks for too: both go out.
    assert sorted(run_queued(webhook_queue)) == ["delivered", "delivered"]
    failed.refresh_from_db()
    assert (failed.status, failed.attempts, failed.response_code) == (S.DELIVERED, 9, 200)
    events = sorted(verified(h, b)["event"] for h, b in endpoint.got)
    assert events == ["desktop.reset", "webhook.retry"]


def test_deliveries_are_read_only_in_the_admin(admin_user):
    hook = Webhook.objects.create(name="ro", url="https://hooks.example.org/x", events="*")
    delivery = WebhookDelivery.objects.create(webhook=hook, event="x.y", payload={"a": 1})
    client = signed_in(admin_user)
    page = client.get(f"/admin/vdi/webhookdelivery/{delivery.pk}/change/")
    assert page.status_code == 200 and b'name="_save"' not in page.content
    client.post(f"/admin/vdi/webhookdelivery/{delivery.pk}/change/", {"event": "changed"})
    delivery.refresh_from_db()
    assert delivery.event == "x.y"
    assert client.get("/admin/vdi/webhookdelivery/add/").status_code == 403
    listing = client.get("/admin/vdi/webhookdelivery/")
    assert b"Retry now" in listing.content


def test_the_sweep_resends_lost_messages_and_orphaned_attempts(db, webhook_queue, settings):
    settings.WEBHOOK_SWEEP_INTERVAL = 60
    hook = Webhook.objects.create(name="sweep", url="https://hooks.example.org/x", events="*")
    now = timezone.now()
    late = WebhookDelivery.objects.create(webhook=hook, event="a", payload={}, attempts=2,
                                          next_try_at=now - timedelta(minutes=5))
    WebhookDelivery.objects.create(webhook=hook, event="b", payload={},
                                   next_try_at=now - timedelta(seconds=10))
    orphan = WebhookDelivery.objects.create(webhook=hook, event="c", payload={}, attempts=1,
                                            status=S.SENDING,
                                            next_try_at=now - timedelta(seconds=1))
    WebhookDelivery.objects.create(webhook=hook, event="d", payload={}, status=S.SENDING,
                                   next_try_at=now + timedelta(seconds=60))
    assert sorted(webhooks.sweep(now)) == sorted([late.pk, orphan.pk])
    assert sorted(m["args"] for m in drain(webhook_queue)) == sorted(
        [[late.pk, 2], [orphan.pk, 1]])
    orphan.refresh_from_db()
    assert orphan.status == S.PENDING


def test_urls_must_be_http_or_https():
    for bad in ("ftp://hooks.example.org/x", "file:///etc/passwd", "gopher://x.org/",
                "javascript:alert(1)", "hooks.example.org"):
        with pytest.raises(ValidationError):
            Webhook(name="x", url=bad, events="*").full_clean(validate_unique=False)
    Webhook(name="x", url="https://hooks.example.org/vdi", events="*").full_clean(
        validate_unique=False)


def test_a_url_written_around_the_form_is_still_refused(owner, webhook_queue,
                                                        django_capture_on_commit_callbacks):
    Webhook.objects.create(name="sneaky", url="file:///etc/passwd", events="*")
    with django_capture_on_commit_callbacks(execute=True):
        audit.record(owner, "desktop.stop", None)
    delivery = WebhookDelivery.objects.get()
    from vdi.worker.webhooks import attempt

    attempt(delivery.pk, 0)
    delivery.refresh_from_db()
    assert delivery.error == "not an http:// or https:// URL"


def test_event_patterns():
    hook = Webhook(events="desktop.*, user.add console.open")
    assert webhooks.matches(hook, "desktop.claim") and webhooks.matches(hook, "user.add")
    assert not webhooks.matches(hook, "user.delete")
    assert not webhooks.matches(hook, "console.close")
    assert webhooks.matches(Webhook(events="*"), "anything.at.all")


def test_signature_verification_refuses_replays_and_tampering():
    body = b'{"event":"desktop.claim"}'
    now = int(time.time())
    header = webhooks.sign(SECRET, body, now)
    assert webhooks.verify(SECRET, header, body, now=now)
    assert not webhooks.verify(SECRET, header, body + b" ", now=now)
    assert not webhooks.verify("another-secret", header, body, now=now)
    assert not webhooks.verify(SECRET, header, body, now=now + 301)  # replayed later
    assert not webhooks.verify(SECRET, "v1=" + header.split("v1=")[1], body, now=now)
    assert not webhooks.verify(SECRET, "garbage", body, now=now)

"""/metrics: who may read it, and the portal's numbers moving with what happens (claims,
readiness, consoles, Celery tasks, the reconciler)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from tests.support import drain, signed_in
from vdi import telemetry
from vdi.choices import DesktopStatus
from vdi.console.relay import Counters
from vdi.models import ConsoleSession, Desktop, ReconcileRun, Stray
from vdi.roles import ADMINISTRATORS
from vdi.services.claims import claim_desktop
from vdi.services.desktops import new_desktop

pytestmark = pytest.mark.usefixtures("empty_queue")
TOKEN = "scraper-token-0123456789abcdef"


@pytest.fixture
def token(settings):
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


def scrape() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples, name: str, **labels: str) -> Any:
    return samples.get((name, frozenset(labels.items())))


# --- access ---------------------------------------------------------------------------------
def test_anonymous_scrapers_are_refused_and_told_how_to_authenticate(db, token):
    response = Client().get("/metrics")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="vdi-metrics"'
    assert b"vdi_desktops" not in response.content


def test_a_wrong_token_is_refused(db, token):
    response = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer not-the-token-at-all")
    assert response.status_code == 403 and b"vdi_" not in response.content


def test_no_token_configured_means_no_token_works(db, settings):
    settings.METRICS_TOKEN = ""
    response = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer ")
    assert response.status_code == 401
    response = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer anything-goes-here")
    assert response.status_code == 403


def test_the_token_opens_the_metrics(db, token):
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    text = response.content.decode()
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    assert "# TYPE vdi_desktops gauge" in text
    assert "django_http_requests_before_middlewares_total" in text  # django-prometheus


def test_administrators_may_look_users_and_helpdesk_may_not(owner, helpdesk, admin_user,
                                                            outsider):
    assert signed_in(owner).get("/metrics").status_code == 403
    assert signed_in(helpdesk).get("/metrics").status_code == 403
    assert b"vdi_desktops" in signed_in(admin_user).get("/metrics").content
    outsider.groups.add(Group.objects.get(name=ADMINISTRATORS))
    assert signed_in(outsider).get("/metrics").status_code == 200


# --- what the numbers say ---------------------------------------------------------------------
def test_a_cold_claim_counts_and_is_timed_to_its_guest_ready(
        owner, pool, host, token, tmp_path, django_capture_on_commit_callbacks):
    from vdi.images.tiny import READY_MARKER
    from vdi.worker import guests

    before = scrape()
    assert value(before, "vdi_desktops", pool="Unit pool", state="provisioning") is None
    assert value(before, "vdi_claims_total", pool="Unit pool", warm="false") is None

    with django_capture_on_commit_callbacks(execute=True):
        desktop = claim_desktop(owner, pool)
    after_claim = scrape()
    assert value(after_claim, "vdi_desktops", pool="Unit pool", state="provisioning") == 1
    assert value(after_claim, "vdi_claims_total", pool="Unit pool", warm="false") == 1
    assert value(after_claim, "vdi_operations_in_progress", kind="provision",
                 status="queued") == 1
    assert value(after_claim, "vdi_claim_ready_seconds_count", pool="Unit pool") is None
    assert [m["args"][0] for m in drain(host.queue)] == ["provision"]

    # The worker booted it (what the provision step records), and the guest says it is ready.
    log = tmp_path / "serial.log"
    log.write_text(f"booting\n{READY_MARKER}\n")
    Desktop.objects.filter(pk=desktop.pk).update(status=DesktopStatus.RUNNING,
                                                 serial_log_path=str(log))
    assert guests.check(desktop.pk) == "ready"
    ready = scrape()
    assert value(ready, "vdi_desktops", pool="Unit pool", state="running") == 1
    assert value(ready, "vdi_desktops", pool="Unit pool", state="provisioning") is None
    assert value(ready, "vdi_claim_ready_seconds_count", pool="Unit pool") == 1
    assert 0 <= value(ready, "vdi_claim_ready_seconds_sum", pool="Unit pool") < 60
    assert value(ready, "vdi_claim_ready_seconds_bucket", pool="Unit pool", le="+Inf") == 1

    # Seen ready again (a later restart): the claim was measured once.
    Desktop.objects.filter(pk=desktop.pk).update(guest_ready_at=None)
    assert guests.check(desktop.pk) == "ready"
    assert value(scrape(), "vdi_claim_ready_seconds_count", pool="Unit pool") == 1


def test_a_warm_claim_is_ready_at_once(owner, pool, host, token,
                                       django_capture_on_commit_callbacks):
    pool.assignment = "automatic"
    pool.save()
    warm = new_desktop(pool, None, None)
    Desktop.objects.filter(pk=warm.pk).update(status=DesktopStatus.RUNNING, pristine=True,
                                              guest_ready_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        assert claim_desktop(owner, pool).pk == warm.pk
    samples = scrape()
    assert value(samples, "vdi_claims_total", pool="Unit pool", warm="true") == 1
    assert value(samples, "vdi_claim_ready_seconds_count", pool="Unit pool") == 1
    assert value(samples, "vdi_claim_ready_seconds_bucket", pool="Unit pool", le="1.0") == 1


def test_open_consoles_and_relayed_bytes(running_desktop, owner, helpdesk, token):
    stale = timezone.now() - timedelta(hours=1)
    ConsoleSession.objects.create(desktop=running_desktop, user=owner)
    ConsoleSession.objects.create(desktop=running_desktop, user=helpdesk, view_only=True)
    ConsoleSession.objects.create(desktop=running_desktop, user=owner,
                                  closed_at=timezone.now())
    gone = ConsoleSession.objects.create(desktop=running_desktop, user=owner)
    ConsoleSession.objects.filter(pk=gone.pk).update(last_seen_at=stale)  # its proxy died

    # What a console proxy reports at each heartbeat and when it closes: the bytes since.
    counters = Counters(to_browser=5000, to_vnc=40, started=0.0)
    telemetry.console_bytes(*counters.unreported())
    counters.to_browser += 1000
    telemetry.console_bytes(*counters.unreported())
    telemetry.console_bytes(*counters.unreported())  # nothing new: nothing added
    samples = scrape()
    assert value(samples, "vdi_console_sessions_open", mode="interactive") == 1
    assert value(samples, "vdi_console_sessions_open", mode="view_only") == 1
    assert value(samples, "vdi_console_bytes_total", direction="to_browser") == 6000
    assert value(samples, "vdi_console_bytes_total", direction="to_guest") == 40


def test_celery_tasks_are_timed_and_their_failures_counted(host, token):
    """The worker's task signals write to Redis; the web process exports it."""
    from vdi import tasks

    host.libvirt_uri = "test:///default"
    host.save()
    assert tasks.host_heartbeat.apply(args=(host.pk,)).get() == "ok"
    assert tasks.host_heartbeat.apply(args=(host.pk,)).get() == "ok"
    failed = tasks.reconcile_host.apply(args=(987654,))
    assert failed.failed()
    samples = scrape()
    assert value(samples, "vdi_celery_tasks_total", task="vdi.host_heartbeat",
                 state="success") == 2
    assert value(samples, "vdi_celery_tasks_total", task="vdi.reconcile_host",
                 state="failure") == 1
    assert value(samples, "vdi_celery_task_duration_seconds_count",
                 task="vdi.host_heartbeat") == 2
    assert value(samples, "vdi_celery_task_duration_seconds_bucket",
                 task="vdi.host_heartbeat", le="+Inf") == 2
    assert value(samples, "vdi_host_up", host=host.name) == 1


def test_reconciler_drift_is_exported(host, token):
    ReconcileRun.objects.create(host=host, finished_at=timezone.now(), findings=[
        {"kind": "domain", "target": "x", "action": "reported"}])
    latest = ReconcileRun.objects.create(host=host, finished_at=timezone.now(), findings=[
        {"kind": "domain", "target": "a", "action": "reported"},
        {"kind": "disk", "target": "b", "action": "reported"},
        {"kind": "desktop", "target": "c", "action": "marked error"}], error="")
    Stray.objects.create(host=host, kind="domain", name="vdiops-stray-1")
    Stray.objects.create(host=host, kind="disk", name="/x/1.qcow2")
    Stray.objects.create(host=host, kind="disk", name="/x/2.qcow2")
    Stray.objects.create(host=host, kind="disk", name="/x/3.qcow2", resolved_at=timezone.now())
    samples = scrape()
    assert value(samples, "vdi_reconcile_last_findings", host=host.name) == 3
    assert value(samples, "vdi_reconcile_last_run_failed", host=host.name) == 0
    assert value(samples, "vdi_reconcile_last_run_timestamp_seconds", host=host.name) == (
        pytest.approx(latest.finished_at.timestamp()))
    assert value(samples, "vdi_reconcile_strays_open", host=host.name, kind="domain") == 1
    assert value(samples, "vdi_reconcile_strays_open", host=host.name, kind="disk") == 2

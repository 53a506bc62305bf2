"""``/metrics`` for Prometheus: django-prometheus' request and database metrics of this
process, and the portal's own, the same from whichever process is scraped: read from the
database (desktops, consoles, reconciler, hosts, webhooks) and from the counters every
process keeps in Redis (``vdi.telemetry``: claims, claim-to-ready latency, console bytes,
Celery tasks).

Access: a scraper presenting ``Authorization: Bearer <VDI_METRICS_TOKEN>`` (when the token is
set; compared in constant time) or a signed-in administrator (superuser or the
Administrators role). Anyone else: 401 without credentials, 403 with the wrong ones.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterator
from datetime import timedelta

import redis
from django.conf import settings
from django.db.models import Count, Max, Q, Sum
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from vdi import telemetry
from vdi.choices import OperationStatus
from vdi.models import (
    ConsoleSession,
    Desktop,
    Host,
    Operation,
    ReconcileRun,
    Stray,
    WebhookDelivery,
)
from vdi.roles import ADMINISTRATORS

log = logging.getLogger(__name__)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class PortalCollector(Collector):
    """The portal's domain metrics, read at each scrape."""

    def collect(self) -> Iterator[Metric]:
        yield from self.desktops()
        yield from self.consoles()
        yield from self.reconciler()
        yield from self.hosts()
        yield from self.operations_and_webhooks()
        yield from self.from_redis()

    def desktops(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("vdi_desktops", "Desktops by pool and state.",
                                   labels=["pool", "state"])
        rows = (Desktop.objects.values("pool__name", "status").annotate(n=Count("id"))
                .order_by("pool__name", "status"))
        for row in rows:
            family.add_metric([row["pool__name"] or "", row["status"]], row["n"])
        yield family

    def consoles(self) -> Iterator[Metric]:
        fresh = timezone.now() - timedelta(seconds=settings.CONSOLE_STALE)
        open_ = ConsoleSession.objects.filter(closed_at__isnull=True, last_seen_at__gte=fresh)
        counts = open_.aggregate(watching=Count("id", filter=Q(view_only=True)),
                                 interactive=Count("id", filter=Q(view_only=False)))
        family = GaugeMetricFamily(
            "vdi_console_sessions_open",
            "Console sessions open now (heard from within VDI_CONSOLE_STALE).", labels=["mode"])
        family.add_metric(["interactive"], counts["interactive"])
        family.add_metric(["view_only"], counts["watching"])
        yield family

    def reconciler(self) -> Iterator[Metric]:
        last_run = GaugeMetricFamily(
            "vdi_reconcile_last_run_timestamp_seconds",
            "When the reconciler last finished a pass over the host.", labels=["host"])
        findings = GaugeMetricFamily(
            "vdi_reconcile_last_findings", "Drift the host's last finished pass found.",
            labels=["host"])
        failed = GaugeMetricFamily(
            "vdi_reconcile_last_run_failed", "1 when the host's last pass ended in an error.",
            labels=["host"])
        latest = (ReconcileRun.objects.filter(finished_at__isnull=False)
                  .values("host_id").annotate(last=Max("id")))
        runs = ReconcileRun.objects.filter(pk__in=[row["last"] for row in latest]
                                           ).select_related("host")
        for run in runs:
            assert run.finished_at is not None
            last_run.add_metric([run.host.name], run.finished_at.timestamp())
            findings.add_metric([run.host.name], len(run.findings or []))
            failed.add_metric([run.host.name], 1 if run.error else 0)
        strays = GaugeMetricFamily(
            "vdi_reconcile_strays_open",
            "Domains and disks on a host that no desktop owns, not yet resolved.",
            labels=["host", "kind"])
        for row in (Stray.objects.filter(resolved_at__isnull=True)
                    .values("host__name", "kind").annotate(n=Count("id"))
                    .order_by("host__name", "kind")):
            strays.add_metric([row["host__name"], row["kind"]], row["n"])
        yield from (last_run, findings, failed, strays)

    def hosts(self) -> Iterator[Metric]:
        age = GaugeMetricFamily("vdi_host_heartbeat_age_seconds",
                                "Seconds since the host's worker last wrote its heartbeat.",
                                labels=["host"])
        up = GaugeMetricFamily(
            "vdi_host_up", "1 when the host's heartbeat is fresh (VDI_HEARTBEAT_STALE) and "
            "its libvirt answered it.", labels=["host"])
        now = timezone.now()
        for host in Host.objects.filter(enabled=True):
            seconds = (now - host.heartbeat_at).total_seconds() if host.heartbeat_at else None
            if seconds is not None:
                age.add_metric([host.name], seconds)
            fresh = seconds is not None and seconds <= settings.HEARTBEAT_STALE
            up.add_metric([host.name], 1 if fresh and not host.heartbeat_error else 0)
        yield from (age, up)

    def operations_and_webhooks(self) -> Iterator[Metric]:
        operations = GaugeMetricFamily("vdi_operations_in_progress",
                                       "Operations queued or running, by kind.",
                                       labels=["kind", "status"])
        for row in (Operation.objects.filter(status__in=OperationStatus.in_progress())
                    .values("kind", "status").annotate(n=Count("id"))
                    .order_by("kind", "status")):
            operations.add_metric([row["kind"], row["status"]], row["n"])
        deliveries = GaugeMetricFamily("vdi_webhook_deliveries",
                                       "Webhook deliveries by state.", labels=["status"])
        for row in (WebhookDelivery.objects.values("status").annotate(n=Count("id"))
                    .order_by("status")):
            deliveries.add_metric([row["status"]], row["n"])
        attempts = WebhookDelivery.objects.aggregate(n=Sum("attempts"))["n"] or 0
        yield from (operations, deliveries,
                    GaugeMetricFamily("vdi_webhook_attempts",
                                      "Attempts of the deliveries on record.", value=attempts))

    def from_redis(self) -> Iterator[Metric]:
        try:
            yield from self._counter("claims_total", "vdi_claims",
                                     "Desktops claimed from pools (warm: handed over running).",
                                     ["pool", "warm"])
            yield from self._histogram("claim_ready_seconds", "vdi_claim_ready_seconds",
                                       "From the start of a claim to its desktop's guest "
                                       "being ready.", ["pool"])
            yield from self._counter("console_bytes_total", "vdi_console_bytes",
                                     "Bytes relayed by the console proxies.", ["direction"])
            yield from self._counter("celery_tasks_total", "vdi_celery_tasks",
                                     "Celery tasks finished, by task and state "
                                     "(success, failure, retry).", ["task", "state"])
            yield from self._histogram("celery_task_duration_seconds",
                                       "vdi_celery_task_duration_seconds",
                                       "How long Celery tasks ran.", ["task"])
        except redis.RedisError as exc:
            log.warning("metrics kept in Redis not read: %s", exc)
            family = GaugeMetricFamily("vdi_metrics_redis_up",
                                       "0 when the counters kept in Redis could not be read.")
            family.add_metric([], 0)
            yield family

    @staticmethod
    def _counter(key: str, name: str, documentation: str,
                 labels: list[str]) -> Iterator[Metric]:
        family = CounterMetricFamily(name, documentation, labels=labels)
        for series, value in sorted(telemetry.counters(key).items()):
            found = dict(series)
            family.add_metric([found.get(label, "") for label in labels], value)
        yield family

    @staticmethod
    def _histogram(key: str, name: str, documentation: str,
                   labels: list[str]) -> Iterator[Metric]:
        family = HistogramMetricFamily(name, documentation, labels=labels)
        for series, histogram in sorted(telemetry.histograms(key).items()):
            found = dict(series)
            buckets = [(str(float(bound)), histogram.buckets.get(str(bound), 0.0))
                       for bound in telemetry.HISTOGRAMS[key]]
            buckets.append(("+Inf", histogram.count))
            family.add_metric([found.get(label, "") for label in labels], buckets,
                              histogram.sum)
        yield family


portal_registry = CollectorRegistry(auto_describe=False)
portal_registry.register(PortalCollector())


def allowed(request: HttpRequest) -> int | None:
    """None when the request may read the metrics, else the status to refuse it with."""
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    token = settings.METRICS_TOKEN
    if scheme.lower() == "bearer" and presented:
        if token and hmac.compare_digest(presented.strip().encode(), token.encode()):
            return None
        return 403
    user = request.user
    if user.is_authenticated:
        is_admin = user.is_active and (
            user.is_superuser or user.groups.filter(name=ADMINISTRATORS).exists())
        return None if is_admin else 403
    return 401


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    refused = allowed(request)
    if refused is not None:
        response = HttpResponse("metrics need a bearer token or an administrator's sign-in\n",
                                status=refused, content_type="text/plain")
        if refused == 401:
            response["WWW-Authenticate"] = 'Bearer realm="vdi-metrics"'
        return response
    body = generate_latest(REGISTRY) + generate_latest(portal_registry)
    return HttpResponse(body, content_type=CONTENT_TYPE)

"""What the operators' dashboard shows, read from the database only (no hypervisor call; the
thumbnails are files the workers wrote). Who sees what is a role, asked through
``vdi.services.access``:

- helpdesk and administrators (who view every desktop and pool) see every pool, desktop,
  session, rollout and failure; hosts and the reconciler's findings with ``vdi.view_host`` and
  ``vdi.view_reconcilerun`` (both roles hold them);
- pool operators see the pools they operate, and those pools' desktops, sessions, rollouts
  and failures;
- anyone else sees no dashboard.

Each part costs a fixed number of queries, whatever the number of desktops.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import (
    Avg,
    Count,
    Exists,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
)
from django.db.models.functions import Coalesce, TruncHour
from django.utils import timezone

from vdi import thumbnails
from vdi.auth_backends import operated_pool_ids
from vdi.choices import DesktopStatus, OperationStatus
from vdi.models import (
    AuditEvent,
    ClaimTiming,
    ConsoleSession,
    Desktop,
    Host,
    Operation,
    Pool,
    ReconcileRun,
    Rollout,
    Stray,
)
from vdi.services import access, retries, rollouts
from vdi.services.access import ScreenAccess, User

CHART_HOURS = 24
FAILURES_SHOWN = 50
FAILURES_DAYS = 7


@dataclass(frozen=True)
class Scope:
    """What one person's dashboard covers."""

    user: User
    everything: bool  # every pool and desktop (helpdesk, administrators)
    pool_ids: frozenset[int]  # the pools they operate (what they see when not everything)
    hosts: bool  # hosts and their load
    reconciler: bool  # the reconciler's runs and strays

    def pools(self) -> QuerySet[Pool]:
        pools = access.visible_pools(self.user)
        return pools if self.everything else pools.filter(pk__in=self.pool_ids)

    def desktops(self) -> QuerySet[Desktop]:
        desktops = access.visible_desktops(self.user)
        return desktops if self.everything else desktops.filter(pool_id__in=self.pool_ids)


def scope_of(user: User) -> Scope | None:
    """The user's dashboard, or None when they may see none."""
    if not access.active(user):
        return None
    everything = access.holds(user, "vdi.view_desktop") and access.holds(user, "vdi.view_pool")
    operated = operated_pool_ids(user)
    if not everything and not operated:
        return None
    return Scope(user=user, everything=everything, pool_ids=operated,
                 hosts=access.holds(user, "vdi.view_host"),
                 reconciler=access.holds(user, "vdi.view_reconcilerun"))


# --- hosts --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class HostRow:
    host: Host
    memory_placed: int  # MiB of the desktops placed on it (what placement counts)
    memory_running: int
    vcpus_placed: int
    vcpus_running: int
    desktops: int
    heartbeat_age: int | None  # seconds, None: never
    up: bool

    @property
    def memory_percent(self) -> int:
        return _percent(self.memory_placed, self.host.memory_capacity_mib)

    @property
    def vcpu_percent(self) -> int:
        return _percent(self.vcpus_placed, self.host.cpu_capacity)


def _percent(used: int, capacity: int) -> int:
    return round(100 * used / capacity) if capacity else 0


def hosts(scope: Scope, now: datetime) -> list[HostRow]:
    if not scope.hosts:
        return []
    running = Q(desktops__status=DesktopStatus.RUNNING)
    found = Host.objects.annotate(
        memory_placed=Coalesce(Sum("desktops__memory_mib"), 0),
        memory_running=Coalesce(Sum("desktops__memory_mib", filter=running), 0),
        vcpus_placed=Coalesce(Sum("desktops__vcpus"), 0),
        vcpus_running=Coalesce(Sum("desktops__vcpus", filter=running), 0),
        desktop_count=Count("desktops"),
    ).order_by("name")
    rows = []
    for host in found:
        age = (int((now - host.heartbeat_at).total_seconds()) if host.heartbeat_at else None)
        rows.append(HostRow(
            host=host, memory_placed=host.memory_placed, memory_running=host.memory_running,
            vcpus_placed=host.vcpus_placed, vcpus_running=host.vcpus_running,
            desktops=host.desktop_count, heartbeat_age=age,
            up=(host.enabled and age is not None and age <= settings.HEARTBEAT_STALE
                and not host.heartbeat_error)))
    return rows


# --- pools --------------------------------------------------------------------------------------

def pools(scope: Scope) -> QuerySet[Pool]:
    """Each pool with ``ready`` (running, nobody's, pristine: a claim gets it at once),
    ``in_use`` (held by someone), ``total``, ``failed`` (in error) desktops."""
    ready = Q(desktops__status=DesktopStatus.RUNNING, desktops__owner__isnull=True,
              desktops__pristine=True)
    return scope.pools().annotate(
        ready=Count("desktops", filter=ready),
        in_use=Count("desktops", filter=Q(desktops__owner__isnull=False)),
        total=Count("desktops"),
        failed=Count("desktops", filter=Q(desktops__status=DesktopStatus.ERROR)),
    ).order_by("name")


# --- live console sessions ----------------------------------------------------------------------

@dataclass
class LiveDesktop:
    """A desktop with open consoles, and how this user may see its screen."""

    desktop: Desktop
    seeing: ScreenAccess = ScreenAccess.NONE
    sessions: list[ConsoleSession] = field(default_factory=list)
    thumbnail_at: datetime | None = None

    @property
    def screen(self) -> bool:
        """May see its thumbnail."""
        return self.seeing.pictures

    @property
    def watch(self) -> bool:
        """May watch it, view only (its console page opens so for them)."""
        return self.seeing in (ScreenAccess.WATCH, ScreenAccess.WATCH_IF_ASKED)

    @property
    def asks_first(self) -> bool:
        """Its user is asked before the watching starts."""
        return self.seeing is ScreenAccess.WATCH_IF_ASKED

    @property
    def thumbnail_version(self) -> int:
        return int(self.thumbnail_at.timestamp()) if self.thumbnail_at else 0


def may_see_screen(user: User, desktop: Desktop) -> bool:
    """Its thumbnail follows the rule its console follows (``access.screen_access``)."""
    return access.screen_access(user, desktop).pictures


def open_sessions(scope: Scope, now: datetime) -> QuerySet[ConsoleSession]:
    fresh = now - timedelta(seconds=settings.CONSOLE_STALE)
    return ConsoleSession.objects.filter(
        closed_at__isnull=True, last_seen_at__gte=fresh,
        desktop__in=scope.desktops().values("pk"))


def live_desktops(scope: Scope, now: datetime) -> list[LiveDesktop]:
    sessions = open_sessions(scope, now).select_related(
        "user", "desktop__pool", "desktop__host", "desktop__owner").order_by("opened_at")
    found: dict[int, LiveDesktop] = {}
    for session in sessions:
        live = found.get(session.desktop_id)
        if live is None:
            desktop = session.desktop
            live = found[desktop.pk] = LiveDesktop(
                desktop=desktop, seeing=access.screen_access(scope.user, desktop))
            if live.screen:
                live.thumbnail_at = thumbnails.taken_at(desktop.domain_name)
        live.sessions.append(session)
    return sorted(found.values(), key=lambda d: d.sessions[0].opened_at)


def screen_of(user: User, desktop_id: int) -> Desktop | None:
    """The desktop whose thumbnail ``user`` asks for, if their dashboard shows it and they may
    see its screen."""
    scope = scope_of(user)
    if scope is None:
        return None
    desktop = scope.desktops().select_related("pool").filter(pk=desktop_id).first()
    if desktop is None or not may_see_screen(user, desktop):
        return None
    return desktop


# --- image rollouts under way --------------------------------------------------------------------

@dataclass(frozen=True)
class RolloutRow:
    rollout: Rollout
    desktops: int  # in its pool
    on_new: int  # of them on the new version
    progress: rollouts.Progress


def rollouts_under_way(scope: Scope, now: datetime) -> list[RolloutRow]:
    """The rollouts of the pools this dashboard shows that are not finished, with how far
    each got. Two queries: the rollouts with their pools' counts, and all their canaries."""
    on_new = Q(pool__desktops__image_version=F("to_version"))
    found = list(Rollout.objects.filter(status__in=rollouts.UNDER_WAY,
                                        pool__in=scope.pools().values("pk"))
                 .select_related("pool", "from_version__image", "to_version__image")
                 .annotate(desktop_count=Count("pool__desktops"),
                           on_new=Count("pool__desktops", filter=on_new))
                 .order_by("pool__name", "-created_at"))
    wanted = {pk for rollout in found for pk in rollout.canaries}
    canaries = Desktop.objects.in_bulk(wanted) if wanted else {}
    return [RolloutRow(rollout, rollout.desktop_count, rollout.on_new,
                       rollouts.progress(rollout, canaries, now)) for rollout in found]


def opens_rollout_pages(user: User) -> bool:
    """The admin's rollout pages open for them (the admin site's own rule: staff, and the
    permission to view rollouts)."""
    return bool(getattr(user, "is_staff", False)) and access.holds(user, "vdi.view_rollout")


# --- failed operations --------------------------------------------------------------------------

@dataclass(frozen=True)
class FailureRow:
    operation: Operation
    refusal: retries.Refusal | None  # None: the user may retry it now

    @property
    def retry_reason(self) -> str:
        """Why it can't be retried, for those who could retry it otherwise."""
        if self.refusal is None or self.refusal.not_theirs:
            return ""
        return self.refusal.reason


def failures(scope: Scope, now: datetime) -> list[FailureRow]:
    """Failed operations of the last days, newest first, each with whether the user may
    retry it (or why not)."""
    mine = Q(desktop__in=scope.desktops().values("pk"))
    if scope.everything and access.holds(scope.user, "vdi.view_operation"):
        mine |= Q(desktop__isnull=True)  # image builds, and desktops since deleted
    later = Operation.objects.filter(desktop_id=OuterRef("desktop_id"), pk__gt=OuterRef("pk"))
    found = (Operation.objects.filter(mine, status=OperationStatus.FAILED,
                                      finished_at__gte=now - timedelta(days=FAILURES_DAYS))
             .annotate(superseded=Exists(later))
             .select_related("desktop__pool", "desktop__host", "requested_by", "image")
             .order_by("-finished_at", "-pk")[:FAILURES_SHOWN])
    return [FailureRow(op, retries.refusal(scope.user, op, superseded=op.superseded))
            for op in found]


# --- the reconciler -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Reconciler:
    last_runs: list[ReconcileRun]  # each host's latest
    strays: list[Stray]  # unresolved


def reconciler(scope: Scope) -> Reconciler:
    if not scope.reconciler:
        return Reconciler([], [])
    latest = ReconcileRun.objects.filter(host=OuterRef("pk")).order_by("-started_at")
    run_ids = Host.objects.annotate(run=Subquery(latest.values("pk")[:1])).values("run")
    runs = list(ReconcileRun.objects.filter(pk__in=run_ids).select_related("host")
                .order_by("host__name"))
    strays = list(Stray.objects.filter(resolved_at__isnull=True).select_related("host")
                  .order_by("host__name", "first_seen_at"))
    return Reconciler(runs, strays)


# --- charts -------------------------------------------------------------------------------------

def _hours(now: datetime) -> list[datetime]:
    top = now.replace(minute=0, second=0, microsecond=0)
    return [top - timedelta(hours=n) for n in range(CHART_HOURS - 1, -1, -1)]


def _series(rows: Iterable[dict[str, Any]], hours: list[datetime], key: str = "n",
            digits: int | None = None) -> list[float | int | None]:
    found = {}
    for row in rows:
        hour = row["hour"]
        if timezone.is_naive(hour):
            hour = timezone.make_aware(hour, UTC)
        found[hour] = row[key]
    values = [found.get(hour) for hour in hours]
    if digits is None:
        return [int(v or 0) for v in values]
    return [None if v is None else round(float(v), digits) for v in values]


def charts(scope: Scope, now: datetime) -> dict[str, Any]:
    """Per hour over the last day: console sessions opened, claims, failed operations and the
    average seconds from a claim to its desktop being ready. One query a series."""
    hours = _hours(now)
    since = hours[0]

    def per_hour(found: QuerySet[Any], stamp: str, **value: Any) -> list[dict[str, Any]]:
        rows: QuerySet[Any] = (found.filter(**{f"{stamp}__gte": since})
                               .annotate(hour=TruncHour(stamp)).values("hour")
                               .annotate(**(value or {"n": Count("pk")})).order_by("hour"))
        return list(rows)

    desktops = scope.desktops().values("pk")
    sessions = ConsoleSession.objects.filter(desktop__in=desktops)
    failed = Operation.objects.filter(status=OperationStatus.FAILED)
    claims = AuditEvent.objects.filter(action="desktop.claim")
    timings = ClaimTiming.objects.all()
    if not scope.everything:
        failed = failed.filter(desktop__in=desktops)
        names = list(scope.pools().values_list("name", flat=True))
        claims = claims.filter(details__pool__in=names)  # the pool's name, as audited
        timings = timings.filter(pool_id__in=scope.pool_ids)
    return {
        "hours": [hour.isoformat() for hour in hours],
        "sessions": _series(per_hour(sessions, "opened_at"), hours),
        "claims": _series(per_hour(claims, "created_at"), hours),
        "failures": _series(per_hour(failed, "finished_at"), hours),
        "claim_ready_seconds": _series(
            per_hour(timings, "ready_at", avg=Avg("seconds")), hours, key="avg", digits=1),
    }


# --- the whole page -----------------------------------------------------------------------------

def summary(scope: Scope, now: datetime) -> dict[str, int]:
    """The numbers at the top: two queries."""
    counted = scope.desktops().aggregate(
        desktops=Count("pk"),
        running=Count("pk", filter=Q(status=DesktopStatus.RUNNING)),
        errors=Count("pk", filter=Q(status=DesktopStatus.ERROR)),
    )
    counted["sessions"] = open_sessions(scope, now).count()
    return {key: int(value or 0) for key, value in counted.items()}


"""The self-service portal: my desktops and the pools I may use. Views read the DB and call
one service; no hypervisor calls."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Prefetch
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from vdi import actions
from vdi.choices import DesktopStatus, ImageStatus, OperationStatus
from vdi.models import Desktop, ImageVersion, Operation, Pool
from vdi.services import access, audit, quotas
from vdi.services.claims import claim_desktop
from vdi.services.desktops import available_actions, request_action
from vdi.services.errors import AccessDenied, ServiceError
from vdi.services.policies import deadline_for, with_console_activity
from vdi.state import TransitionRefused


def client_address(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


def _desktop_rows(request: HttpRequest) -> list[dict[str, Any]]:
    now = timezone.now()
    desktops = with_console_activity(
        Desktop.objects.filter(owner_id=request.user.pk)
        .select_related("pool", "host", "image_version__image", "install_media"), now,
    ).prefetch_related(Prefetch(  # only what is under way: never a desktop's whole history
        "operations", to_attr="under_way",
        queryset=Operation.objects.filter(status__in=OperationStatus.in_progress())))
    rows = []
    for desktop in desktops:
        deadline = deadline_for(desktop, now)
        operation = next(iter(desktop.under_way), None)
        rows.append({
            "desktop": desktop,
            "actions": available_actions(request.user, desktop),
            "step": operation.step if operation else "",
            "deadline": deadline,
            "minutes_left": max(0, int((deadline.at - now).total_seconds() // 60))
            if deadline else None,
            "publish_url": _publish_url(request, desktop),
            "snapshots_url": _snapshots_url(request, desktop),
            "backups_url": _backups_url(request, desktop),
        })
    return rows


def _publish_url(request: HttpRequest, desktop: Desktop) -> str:
    """Where an install or maintenance desktop is published, for those who may and when it
    can be."""
    can = ((desktop.is_install or desktop.is_maintenance)
           and desktop.status in actions.PUBLISH.allowed_from
           and access.holds(request.user, actions.PUBLISH.permission, desktop))
    return reverse("admin:vdi_desktop_publish", args=[desktop.pk]) if can else ""


def _snapshots_url(request: HttpRequest, desktop: Desktop) -> str:
    """A persistent desktop's snapshots page, for those who may take them."""
    if actions.SNAPSHOT.refusal(desktop, as_owner=False) is not None:
        return ""
    if access.standing(request.user, actions.SNAPSHOT, desktop) is access.Standing.NONE:
        return ""
    return reverse("desktop-snapshots", args=[desktop.pk])


def _backups_url(request: HttpRequest, desktop: Desktop) -> str:
    """A persistent desktop's backups page, for those who may back it up."""
    if actions.BACKUP.refusal(desktop, as_owner=False) is not None:
        return ""
    if access.standing(request.user, actions.BACKUP, desktop) is access.Standing.NONE:
        return ""
    return reverse("desktop-backups", args=[desktop.pk])


def _pool_cards(request: HttpRequest, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    held: dict[int, int] = {}
    for row in rows:
        held[row["desktop"].pool_id] = held.get(row["desktop"].pool_id, 0) + 1
    pools = list(access.entitled_pools(request.user).select_related("image"))
    images = [p.image_id for p in pools]
    ready = set(ImageVersion.objects.filter(image__in=images, status=ImageStatus.READY)
                .values_list("image_id", flat=True))
    preparing = {op.image_id: op for op in Operation.objects.filter(
        image__in=images, status__in=OperationStatus.in_progress()).order_by("created_at")}
    waiting = dict(Desktop.objects.filter(
        pool__in=pools, owner__isnull=True, status=DesktopStatus.RUNNING, pristine=True,
        guest_ready_at__isnull=False).values_list("pool").annotate(n=Count("pk")))
    cards = []
    for pool in pools:
        blocked = ""
        if pool.image_id not in ready:
            op = preparing.get(pool.image_id)
            blocked = (f"Being prepared: {op.step or 'queued'} ({op.progress}%)." if op
                       else "Its image has no version yet.")
        elif pool.draining:
            blocked = "Being drained: no new desktops."
        elif held.get(pool.pk, 0) >= pool.max_per_user:
            blocked = "You have the most desktops this pool allows."
        wait = ("A desktop is booted and waiting: yours at once." if waiting.get(pool.pk)
                else "A claim starts a new desktop: it boots first.")
        cards.append({"pool": pool, "held": held.get(pool.pk, 0), "blocked": blocked,
                      "wait": wait})
    return cards


@require_GET
@login_required
def desktop_list(request: HttpRequest) -> HttpResponse:
    rows = _desktop_rows(request)
    assert isinstance(request.user, access.Account)
    context = {"rows": rows, "pools": _pool_cards(request, rows),
               "limits": quotas.limits_for(request.user)}
    return render(request, "vdi/desktop_list.html", context)


@require_GET
@login_required
def desktop_rows(request: HttpRequest) -> HttpResponse:
    """The live part of the page, fetched again when ``/ws/live/`` says something changed."""
    return render(request, "vdi/_desktop_rows.html", {"rows": _desktop_rows(request)})


@require_POST
@login_required
def pool_claim(request: HttpRequest, pk: int) -> HttpResponseRedirect:
    pool = Pool.objects.filter(pk=pk).first()
    if pool is None or not access.can_use_pool(request.user, pool):
        raise Http404("No such pool.")
    try:
        desktop = claim_desktop(request.user, pool, client_address(request))
    except ServiceError as exc:
        messages.error(request, str(exc))
        return redirect("desktop-list")
    if desktop.status == DesktopStatus.RUNNING:
        return redirect("desktop-console", pk=desktop.pk)
    messages.success(request, f"Desktop {desktop} is being prepared; it opens in a moment.")
    return redirect("desktop-list")


@require_POST
@login_required
def desktop_create(request: HttpRequest) -> HttpResponseRedirect:
    """The form on older pages posts a pool id here: same as claiming from that pool."""
    try:
        pk = int(request.POST.get("pool", ""))
    except ValueError:
        pk = 0
    if not Pool.objects.filter(pk=pk).exists():
        messages.error(request, "Choose a pool to get a desktop from.")
        return redirect("desktop-list")
    return pool_claim(request, pk)


@require_POST
@login_required
def desktop_action(request: HttpRequest, pk: int, action: str) -> HttpResponseRedirect:
    desktop = get_object_or_404(Desktop.objects.select_related("pool", "host"), pk=pk)
    if not access.can_see_desktop(request.user, desktop):
        raise Http404("No such desktop.")
    try:
        operation = request_action(request.user, desktop, action, client_address(request))
    except KeyError:
        raise Http404("No such action.") from None
    except AccessDenied:
        raise Http404("No such desktop.") from None
    except (ServiceError, TransitionRefused) as exc:
        messages.error(request, str(exc))
    else:
        label = actions.get(operation.kind).label
        messages.info(request, f"{label} of {desktop} requested.")
    return redirect("desktop-list")


def rate_limited(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """allauth's answer when a rate limit (password reset mails, ...) is passed: audited."""
    audit.record(request.user if request.user.is_authenticated else None, "auth.rate_limited",
                 None, client_address(request), path=request.path[:200])
    return render(request, "429.html", status=429)

"""The self-service portal: my desktops and the pools I may use. Views read the DB and call
one service; no hypervisor calls."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from vdi import state
from vdi.choices import DesktopStatus
from vdi.models import Desktop, Pool
from vdi.services import access, quotas
from vdi.services.claims import claim_desktop, release_desktop
from vdi.services.desktops import USER_ACTIONS, request_action
from vdi.services.errors import ServiceError
from vdi.services.policies import deadline_for, with_console_activity
from vdi.state import TransitionRefused

CONFIRMATIONS = {
    "reset": "Reset to the golden image? Everything on the system disk is lost: installed "
             "programs and files outside the data disk. {data}",
    "release": "Give this desktop back to the pool? It is reset to the golden image: "
               "everything you did on it is lost.",
    "delete": "Delete this desktop? {data_delete}This cannot be undone.",
}


def client_address(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


def _actions(desktop: Desktop, user: Any) -> list[dict[str, str]]:
    persistent = desktop.pool.is_persistent
    names = [a for a in state.allowed_actions(desktop.status) if a in USER_ACTIONS]
    if desktop.pool.is_automatic and not access.is_admin(user):
        names = [a for a in names if a != "delete"]
    if not persistent and "release" in state.allowed_actions(desktop.status):
        names.append("release")
    text = {
        "data": "Your data disk (/data) is kept." if persistent else "",
        "data_delete": "Its data disk and your files on it are deleted too. " if persistent
        else "",
    }
    return [{"name": n, "confirm": CONFIRMATIONS.get(n, "").format(**text)} for n in names]


def _desktop_rows(request: HttpRequest) -> list[dict[str, Any]]:
    now = timezone.now()
    desktops = with_console_activity(
        Desktop.objects.live().filter(owner_id=request.user.pk)
        .select_related("pool", "host", "image_version__image"), now,
    ).prefetch_related("operations")
    rows = []
    for desktop in desktops:
        deadline = deadline_for(desktop, now)
        rows.append({
            "desktop": desktop,
            "actions": _actions(desktop, request.user),
            "operation": next(iter(desktop.operations.all()), None),
            "deadline": deadline,
            "minutes_left": max(0, int((deadline.at - now).total_seconds() // 60))
            if deadline else None,
        })
    return rows


def _pool_cards(request: HttpRequest, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    held: dict[int, int] = {}
    for row in rows:
        held[row["desktop"].pool_id] = held.get(row["desktop"].pool_id, 0) + 1
    cards = []
    for pool in access.entitled_pools(request.user).select_related("image"):
        blocked = ""
        if pool.draining:
            blocked = "Being drained: no new desktops."
        elif held.get(pool.pk, 0) >= pool.max_per_user:
            blocked = "You have the most desktops this pool allows."
        cards.append({"pool": pool, "held": held.get(pool.pk, 0), "blocked": blocked})
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
    """The live part of the page, polled by htmx."""
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
    if action not in (*USER_ACTIONS, "release"):
        raise Http404("No such action.")
    desktop = get_object_or_404(Desktop.objects.live().select_related("pool", "host"), pk=pk)
    if not access.can_manage_desktop(request.user, desktop):
        raise Http404("No such desktop.")
    try:
        if action == "release":
            release_desktop(request.user, desktop, client_address(request))
        else:
            request_action(request.user, desktop, action, client_address(request))
    except (ServiceError, TransitionRefused) as exc:
        messages.error(request, str(exc))
    else:
        messages.info(request, f"{action.capitalize()} of {desktop} requested.")
    return redirect("desktop-list")

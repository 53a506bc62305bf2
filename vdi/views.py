"""The user's desktops page. Views read the DB and call one service; no hypervisor calls."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from vdi import state
from vdi.models import Desktop, Pool
from vdi.services import access
from vdi.services.desktops import create_desktop, request_action
from vdi.services.errors import ServiceError
from vdi.state import TransitionRefused

USER_ACTIONS = ("start", "stop", "restart", "delete")


def client_address(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


@require_GET
@login_required
def desktop_list(request: HttpRequest) -> HttpResponse:
    desktops = list(
        Desktop.objects.live()
        .filter(owner_id=request.user.pk)
        .select_related("pool", "host", "image_version__image")
        .prefetch_related("operations")
    )
    rows = [
        {
            "desktop": desktop,
            "actions": [a for a in state.allowed_actions(desktop.status) if a in USER_ACTIONS],
            "operation": next(iter(desktop.operations.all()), None),
        }
        for desktop in desktops
    ]
    pools = [p for p in Pool.objects.filter(enabled=True).select_related("image")
             if access.can_use_pool(request.user, p)]
    context = {
        "rows": rows,
        "pools": pools,
        "refresh": any(desktop.is_transitional for desktop in desktops),
    }
    return render(request, "vdi/desktop_list.html", context)


@require_POST
@login_required
def desktop_create(request: HttpRequest) -> HttpResponseRedirect:
    try:
        pool = Pool.objects.get(pk=int(request.POST.get("pool", "")))
    except (ValueError, Pool.DoesNotExist):
        messages.error(request, "Choose a pool to create a desktop from.")
        return redirect("desktop-list")
    try:
        desktop = create_desktop(request.user, pool, client_address(request))
    except ServiceError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Desktop {desktop} is being prepared.")
    return redirect("desktop-list")


@require_POST
@login_required
def desktop_action(request: HttpRequest, pk: int, action: str) -> HttpResponseRedirect:
    if action not in USER_ACTIONS:
        raise Http404("No such action.")
    desktop = get_object_or_404(Desktop.objects.live().select_related("pool", "host"), pk=pk)
    if not access.can_manage_desktop(request.user, desktop):
        raise Http404("No such desktop.")
    try:
        request_action(request.user, desktop, action, client_address(request))
    except (ServiceError, TransitionRefused) as exc:
        messages.error(request, str(exc))
    else:
        messages.info(request, f"{action.capitalize()} of {desktop} requested.")
    return redirect("desktop-list")

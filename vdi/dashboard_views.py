"""The operators' dashboard: the page, its parts (fetched again when ``/ws/live/`` says
something changed), the charts' JSON, the thumbnails and the Retry button. Views read the
database through ``vdi.services.dashboard`` and act through ``vdi.services.retries``."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from vdi import thumbnails
from vdi.services import dashboard, retries
from vdi.services.dashboard import Scope
from vdi.services.errors import AccessDenied, ServiceError
from vdi.state import TransitionRefused
from vdi.views import client_address

THUMBNAIL_CACHE = "private, max-age=30"  # the page names each picture with its version
PARTS = ("summary", "hosts", "pools", "rollouts", "sessions", "failures", "reconciler")


def _scope(request: HttpRequest) -> Scope:
    scope = dashboard.scope_of(request.user)
    if scope is None:
        raise PermissionDenied("The dashboard is for the helpdesk, pool operators and "
                               "administrators.")
    return scope


def _part(scope: Scope, name: str) -> dict[str, Any]:
    """What the part ``name`` shows."""
    now = timezone.now()
    if name == "summary":
        return {"summary": dashboard.summary(scope, now)}
    if name == "hosts":
        return {"hosts": dashboard.hosts(scope, now)}
    if name == "pools":
        return {"pools": dashboard.pools(scope)}
    if name == "rollouts":
        return {"rollouts": dashboard.rollouts_under_way(scope, now),
                "rollout_pages": dashboard.opens_rollout_pages(scope.user)}
    if name == "sessions":
        return {"live": dashboard.live_desktops(scope, now)}
    if name == "failures":
        return {"failures": dashboard.failures(scope, now)}
    return {"reconciler": dashboard.reconciler(scope)}


def _shown(scope: Scope) -> list[str]:
    """The parts this person's dashboard has."""
    hidden = {"hosts": not scope.hosts, "reconciler": not scope.reconciler}
    return [name for name in PARTS if not hidden.get(name)]


@require_GET
@login_required
def dashboard_page(request: HttpRequest) -> HttpResponse:
    scope = _scope(request)
    context: dict[str, Any] = {"scope": scope, "parts": _shown(scope)}
    for name in _shown(scope):
        context.update(_part(scope, name))
    return render(request, "vdi/dashboard/page.html", context)


@require_GET
@login_required
def dashboard_part(request: HttpRequest, name: str) -> HttpResponse:
    scope = _scope(request)
    if name not in _shown(scope):
        raise Http404("No such part.")
    return render(request, f"vdi/dashboard/_{name}.html", {"scope": scope,
                                                           **_part(scope, name)})


@require_GET
@login_required
def dashboard_charts(request: HttpRequest) -> JsonResponse:
    scope = _scope(request)
    response = JsonResponse(dashboard.charts(scope, timezone.now()))
    response["Cache-Control"] = "private, no-store"
    return response


@require_GET
@login_required
def desktop_thumbnail(request: HttpRequest, pk: int) -> FileResponse:
    """The desktop's screen as its worker last saw it, to those whose dashboard shows it and
    who may see its screen."""
    desktop = dashboard.screen_of(request.user, pk)
    if desktop is None:
        raise Http404("No such thumbnail.")
    try:
        picture = thumbnails.path_for(desktop.domain_name).open("rb")
    except OSError:
        raise Http404("No thumbnail yet.") from None
    response = FileResponse(picture, content_type="image/jpeg")
    response["Cache-Control"] = THUMBNAIL_CACHE
    return response


@require_POST
@login_required
def operation_retry(request: HttpRequest, pk: int) -> HttpResponse:
    _scope(request)
    try:
        operation = retries.retry(request.user, pk, client_address(request))
    except AccessDenied:
        raise PermissionDenied("You may not retry this operation.") from None
    except (ServiceError, TransitionRefused) as exc:
        messages.error(request, f"Not retried: {exc}")
    else:
        messages.info(request, f"Asked again: {operation.get_kind_display()} of "
                               f"{operation.target}.")
    return redirect("dashboard")

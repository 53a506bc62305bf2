"""A desktop's snapshots: the tree, and take, revert (confirmed on a page that says what is
lost), delete (owners of persistent desktops, and whoever holds ``vdi.snapshot_desktop`` on
it), with the last of these that failed until it is dismissed or one of its kind succeeds.
The tree is a live part of the page (fetched again when ``/ws/live/`` says the desktop
changed). No hypervisor calls here."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from vdi import actions
from vdi.choices import DesktopStatus, SnapshotStatus
from vdi.models import Desktop, Snapshot
from vdi.services import access, failures, snapshots
from vdi.services.access import Standing
from vdi.view_outcomes import asked
from vdi.views import client_address

CONFIRMED = "revert"  # the confirmation page's form says it with its ``confirm`` field


def _desktop(request: HttpRequest, pk: int) -> Desktop:
    desktop = get_object_or_404(Desktop.objects.select_related("pool", "owner"), pk=pk)
    if (not access.can_see_desktop(request.user, desktop)
            or access.standing(request.user, actions.SNAPSHOT, desktop) is Standing.NONE):
        raise Http404("No such desktop.")
    return desktop


def _part(request: HttpRequest, desktop: Desktop) -> dict[str, object]:
    """What the live part shows: the desktop's state, the last failure, the tree."""
    return {
        "desktop": desktop,
        "nodes": snapshots.tree(desktop),
        "failure": failures.last_failure(request.user, desktop, failures.SNAPSHOT_WORK),
        "dismiss": "snapshot-failure-dismiss",
        "running": desktop.status == DesktopStatus.RUNNING,
        "settled": desktop.status in actions.SNAPSHOT.allowed_from,
    }


@require_GET
@login_required
def snapshot_page(request: HttpRequest, pk: int) -> HttpResponse:
    desktop = _desktop(request, pk)
    user_limits, pool_limits = (snapshots.limits_of(desktop) if desktop.pool
                                else (None, None))
    return render(request, "vdi/snapshots.html", {
        **_part(request, desktop),
        "why_not": actions.SNAPSHOT.refusal(desktop, as_owner=False),
        "user_limits": user_limits,
        "pool_limits": pool_limits,
    })


@require_GET
@login_required
def snapshot_part(request: HttpRequest, pk: int) -> HttpResponse:
    """The live part of the page, fetched again when ``/ws/live/`` says something changed."""
    return render(request, "vdi/_snapshots_part.html", _part(request, _desktop(request, pk)))


@require_POST
@login_required
def snapshot_take(request: HttpRequest, pk: int) -> HttpResponseRedirect:
    desktop = _desktop(request, pk)
    name = request.POST.get("name", "")
    return asked(request, lambda: snapshots.take(
        request.user, desktop, name, request.POST.get("description", ""),
        with_data_disk=request.POST.get("with_data_disk") == "on",
        source_address=client_address(request)), f"Taking the snapshot {name.strip()}.",
        "desktop-snapshots", pk=desktop.pk)


def _snapshot(request: HttpRequest, pk: int) -> Snapshot:
    snapshot = get_object_or_404(Snapshot.objects.select_related("desktop"), pk=pk)
    _desktop(request, snapshot.desktop_id)
    return snapshot


@require_http_methods(["GET", "POST"])
@login_required
def snapshot_revert(request: HttpRequest, pk: int) -> HttpResponse:
    """A revert throws the desktop's present away: its page says what is lost, and only its
    form's ``confirm`` asks for it (a bare POST, from a stale page or a script that did not
    read it, is sent to the page)."""
    snapshot = _snapshot(request, pk)
    if request.method == "POST" and request.POST.get("confirm") == CONFIRMED:
        return asked(request, lambda: snapshots.revert(
            request.user, snapshot, client_address(request)),
            f"Going back to the snapshot {snapshot.name}.", "desktop-snapshots",
            pk=snapshot.desktop_id)
    if request.method == "POST":
        return redirect("snapshot-revert", pk=snapshot.pk)
    desktop = snapshot.desktop
    return render(request, "vdi/snapshot_revert.html", {
        "snapshot": snapshot, "desktop": desktop, "confirmed": CONFIRMED,
        "running": desktop.status == DesktopStatus.RUNNING,
        "why_not": _why_no_revert(snapshot, desktop),
    })


def _why_no_revert(snapshot: Snapshot, desktop: Desktop) -> str | None:
    if snapshot.status != SnapshotStatus.READY:
        return f"The snapshot {snapshot.name} is {snapshot.get_status_display()}."
    if desktop.status not in actions.REVERT.allowed_from:
        return f"The desktop is {desktop.get_status_display()}: wait until it settles."
    return actions.REVERT.refusal(desktop, as_owner=False)


@require_POST
@login_required
def snapshot_delete(request: HttpRequest, pk: int) -> HttpResponseRedirect:
    snapshot = _snapshot(request, pk)
    return asked(request, lambda: snapshots.delete(
        request.user, snapshot, client_address(request)),
        f"Deleting the snapshot {snapshot.name}.", "desktop-snapshots",
        pk=snapshot.desktop_id)


@require_POST
@login_required
def snapshot_failure_dismiss(request: HttpRequest, pk: int, operation: int
                             ) -> HttpResponseRedirect:
    desktop = _desktop(request, pk)
    return asked(request, lambda: failures.dismiss(
        request.user, desktop, operation, failures.SNAPSHOT_WORK, client_address(request)),
        "Dismissed.", "desktop-snapshots", pk=desktop.pk)

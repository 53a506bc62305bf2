"""A desktop's backups: back up now, restore one in place, restore one file of its data disk
(owners of persistent desktops, and whoever holds ``vdi.backup_desktop`` on it), with the last
backup or restore that failed until it is dismissed or one of its kind succeeds. The list is a
live part of the page (fetched again when ``/ws/live/`` says the desktop changed)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from vdi import actions
from vdi.models import Backup, Desktop, FileTransfer
from vdi.services import access, backups, failures
from vdi.services.access import Account, Standing
from vdi.services.errors import AccessDenied, ServiceError
from vdi.view_outcomes import asked
from vdi.views import client_address


def _desktop(request: HttpRequest, pk: int) -> Desktop:
    desktop = get_object_or_404(Desktop.objects.select_related("pool", "owner", "host"), pk=pk)
    if (not access.can_see_desktop(request.user, desktop)
            or access.standing(request.user, actions.BACKUP, desktop) is Standing.NONE):
        raise Http404("No such desktop.")
    return desktop


def _backup(request: HttpRequest, pk: int) -> Backup:
    backup = get_object_or_404(Backup.objects.select_related("desktop"), pk=pk)
    if backup.desktop_id is None:
        raise Http404("No such backup.")
    _desktop(request, backup.desktop_id)
    return backup


def _part(request: HttpRequest, desktop: Desktop) -> dict[str, object]:
    """What the live part shows: the desktop's state, the last failure, the backups and the
    files restored for this user."""
    user = request.user
    assert isinstance(user, Account)  # login_required
    return {
        "desktop": desktop,
        "backups": Backup.objects.filter(desktop=desktop).select_related("parent"),
        "failure": failures.last_failure(user, desktop, failures.BACKUP_WORK),
        "dismiss": "backup-failure-dismiss",
        "settled": desktop.status in actions.BACKUP.allowed_from,
        "restore_confirm": actions.RESTORE.confirm,
        "restored": FileTransfer.objects.filter(desktop=desktop, user=user,
                                                direction=FileTransfer.Direction.OUT)[:5],
    }


@require_GET
@login_required
def backup_page(request: HttpRequest, pk: int) -> HttpResponse:
    desktop = _desktop(request, pk)
    return render(request, "vdi/backups.html", {
        **_part(request, desktop),
        "why_not": actions.BACKUP.refusal(desktop, as_owner=False),
    })


@require_GET
@login_required
def backup_part(request: HttpRequest, pk: int) -> HttpResponse:
    """The live part of the page, fetched again when ``/ws/live/`` says something changed."""
    return render(request, "vdi/_backups_part.html", _part(request, _desktop(request, pk)))


@require_POST
@login_required
def backup_now(request: HttpRequest, pk: int) -> HttpResponseRedirect:
    desktop = _desktop(request, pk)
    return asked(request, lambda: backups.back_up(
        request.user, desktop, client_address(request)), f"Backing up {desktop}.",
        "desktop-backups", pk=desktop.pk)


@require_POST
@login_required
def backup_restore(request: HttpRequest, pk: int) -> HttpResponseRedirect:
    backup = _backup(request, pk)
    assert backup.desktop_id is not None
    return asked(request, lambda: backups.restore(
        request.user, backup, client_address(request)),
        f"Restoring the backup of {backup.created_at:%Y-%m-%d %H:%M}.", "desktop-backups",
        pk=backup.desktop_id)


@require_POST
@login_required
def backup_restore_file(request: HttpRequest, pk: int) -> HttpResponseRedirect:
    backup = _backup(request, pk)
    assert backup.desktop_id is not None
    path = request.POST.get("path", "")
    return asked(request, lambda: backups.restore_file(
        request.user, backup, path, client_address(request)),
        f"Restoring {path.strip()}: it appears below, ready to download, in a moment.",
        "desktop-backups", pk=backup.desktop_id)


@require_POST
@login_required
def backup_failure_dismiss(request: HttpRequest, pk: int, operation: int
                           ) -> HttpResponseRedirect:
    desktop = _desktop(request, pk)
    return asked(request, lambda: failures.dismiss(
        request.user, desktop, operation, failures.BACKUP_WORK, client_address(request)),
        "Dismissed.", "desktop-backups", pk=desktop.pk)


@require_POST
@login_required
def backup_restore_new(request: HttpRequest, pk: int) -> HttpResponseRedirect:
    backup = _backup(request, pk)
    try:
        desktop = backups.restore_as_new(request.user, backup, client_address(request))
    except AccessDenied:
        raise Http404("No such backup.") from None
    except ServiceError as exc:
        messages.error(request, str(exc))
        return redirect("desktop-backups", pk=backup.desktop_id)
    messages.info(request, f"{desktop} is being made from the backup of "
                           f"{backup.created_at:%Y-%m-%d %H:%M}.")
    return redirect("desktop-list")

"""Backups in the API, through ``vdi.services.backups`` as the backup page does: a desktop's
(``/api/desktops/<id>/backups/``: GET lists them, POST backs it up now) and each one
(``/api/backups/``: read, ``restore/`` in place, ``restore-as-new/`` to a new desktop of its
pool for its owner). Who may: the desktop's owner (a persistent desktop), its pool's
operators, administrators; a backup whose desktop is gone, its owner and administrators.
Every action answers 202 with the operation queued."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from vdi import actions
from vdi.api import filters, serializers
from vdi.api.calls import OPERATION, account, check_standing, client_address, queued
from vdi.models import Backup, Desktop, Operation
from vdi.services import backups


def of_desktop(request: Request, desktop: Desktop) -> Response:
    """``GET /api/desktops/<id>/backups/``: newest first."""
    check_standing(request, desktop, actions.BACKUP, "backups")
    found = Backup.objects.filter(desktop=desktop).select_related("owner")
    return Response(serializers.BackupSerializer(found, many=True).data)


def take(request: Request, desktop: Desktop) -> Response:
    """``POST /api/desktops/<id>/backups/``: back it up now (incremental when it can)."""
    check_standing(request, desktop, actions.BACKUP, "backups")
    return queued(backups.back_up(account(request), desktop, client_address(request)))


class BackupViewSet(viewsets.ReadOnlyModelViewSet[Backup]):
    """Backups the caller may restore."""

    serializer_class = serializers.BackupSerializer
    filterset_class = filters.BackupFilter
    ordering_fields = ["created_at"]

    def get_queryset(self) -> QuerySet[Backup]:
        return (backups.visible(self.request.user).select_related("owner")
                .order_by("-created_at", "-pk"))

    @extend_schema(request=None, responses=OPERATION)
    @action(detail=True, methods=["post"])
    def restore(self, request: Request, pk: str | None = None) -> Response:
        """Restore in place: the desktop is powered off and its disks become the backup's."""
        return queued(backups.restore(account(request), self.get_object(),
                                      client_address(request)))

    @extend_schema(request=None, responses=OPERATION)
    @action(detail=True, methods=["post"], url_path="restore-as-new")
    def restore_as_new(self, request: Request, pk: str | None = None) -> Response:
        """A new desktop of the backup's pool, for its owner, made from it (the operation is
        its provisioning; its ``desktop`` is the new desktop)."""
        desktop = backups.restore_as_new(account(request), self.get_object(),
                                         client_address(request))
        return queued(Operation.objects.get(desktop=desktop, kind=actions.PROVISION.name))

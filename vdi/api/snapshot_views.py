"""Snapshots in the API, through ``vdi.services.snapshots`` as the snapshot page does: a
desktop's (``/api/desktops/<id>/snapshots/``: GET lists them, POST takes one) and each one
(``/api/snapshots/``: read, ``revert/``, DELETE). Who may: the desktop's owner (a persistent
desktop), its pool's operators, administrators; the helpdesk sees the desktop, not its
snapshots. Taking, reverting and deleting answer 202 with the operation queued."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from vdi import actions
from vdi.api import filters, serializers
from vdi.api.calls import OPERATION, account, check_standing, client_address, queued
from vdi.models import Desktop, Snapshot
from vdi.services import snapshots


def of_desktop(request: Request, desktop: Desktop) -> Response:
    """``GET /api/desktops/<id>/snapshots/``: the tree, parents before children."""
    check_standing(request, desktop, actions.SNAPSHOT, "snapshots")
    found = [node.snapshot for node in snapshots.tree(desktop)]
    return Response(serializers.SnapshotSerializer(found, many=True).data)


def take(request: Request, desktop: Desktop) -> Response:
    """``POST /api/desktops/<id>/snapshots/``: a live snapshot of a running desktop, an offline
    one of a stopped desktop."""
    check_standing(request, desktop, actions.SNAPSHOT, "snapshots")
    asked = serializers.TakeSnapshotSerializer(data=request.data)
    asked.is_valid(raise_exception=True)
    return queued(snapshots.take(
        account(request), desktop, asked.validated_data["name"],
        asked.validated_data["description"], asked.validated_data["with_data_disk"],
        client_address(request)))


class SnapshotViewSet(mixins.DestroyModelMixin, viewsets.ReadOnlyModelViewSet[Snapshot]):
    """Snapshots of the desktops whose snapshots the caller may take; DELETE asks the worker
    to delete one (202)."""

    serializer_class = serializers.SnapshotSerializer
    filterset_class = filters.SnapshotFilter
    ordering_fields = ["created_at"]

    def get_queryset(self) -> QuerySet[Snapshot]:
        return (snapshots.visible(self.request.user).select_related("created_by")
                .order_by("desktop_id", "created_at", "pk"))

    @extend_schema(request=None, responses=OPERATION)
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Delete the snapshot from the desktop's disks (follow the operation)."""
        return queued(snapshots.delete(account(request), self.get_object(),
                                       client_address(request)))

    @extend_schema(request=None, responses=OPERATION)
    @action(detail=True, methods=["post"])
    def revert(self, request: Request, pk: str | None = None) -> Response:
        """Take the desktop back to this snapshot (everything since it is lost)."""
        return queued(snapshots.revert(account(request), self.get_object(),
                                       client_address(request)))

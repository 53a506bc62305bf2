"""The API's endpoints. Each calls the same service as the page that does the same thing;
lists are what the caller may see (``access.visible_*``), actions what they may do."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from vdi.api import backup_views, filters, serializers, snapshot_views
from vdi.api.calls import OPERATION, account, client_address, queued
from vdi.api.permissions import HoldsPermission, TokenScope
from vdi.console import guards
from vdi.console_views import WEBSOCKET
from vdi.models import (
    ApiToken,
    AuditEvent,
    Desktop,
    GoldenImage,
    Host,
    ImageVersion,
    Operation,
    Pool,
    UserQuota,
)
from vdi.services import access, console, pools, quotas, tokens
from vdi.services.claims import claim_desktop
from vdi.services.desktops import request_action
from vdi.services.errors import AccessDenied, ServiceError

WITH_PERMISSION = [IsAuthenticated, TokenScope, HoldsPermission]


class PoolViewSet(viewsets.ReadOnlyModelViewSet[Pool]):
    """Pools the caller may use or operate (all of them for administrators)."""

    serializer_class = serializers.PoolSerializer
    filterset_class = filters.PoolFilter
    ordering_fields = ["name", "created_at"]

    def get_queryset(self) -> QuerySet[Pool]:
        return access.visible_pools(self.request.user).select_related("image").order_by("name")

    @extend_schema(request=None, responses={201: serializers.DesktopSerializer})
    @action(detail=True, methods=["post"])
    def claim(self, request: Request, pk: str | None = None) -> Response:
        """A desktop from this pool: a ready one at once, else a new one being prepared."""
        desktop = claim_desktop(account(request), self.get_object(), client_address(request))
        data = serializers.DesktopSerializer(desktop, context={"request": request}).data
        return Response(data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: serializers.PoolSerializer})
    @action(detail=True, methods=["post"])
    def drain(self, request: Request, pk: str | None = None) -> Response:
        """Take no new claims (desktops in use keep running)."""
        return self._set_draining(request, True)

    @extend_schema(request=None, responses={200: serializers.PoolSerializer})
    @action(detail=True, methods=["post"])
    def undrain(self, request: Request, pk: str | None = None) -> Response:
        """Take claims again."""
        return self._set_draining(request, False)

    def _set_draining(self, request: Request, draining: bool) -> Response:
        pool = self.get_object()
        if not access.holds(request.user, "vdi.change_pool", pool):
            raise AccessDenied(f"You may not drain the pool {pool.name}.")
        pools.set_draining(request.user, pool, draining, client_address(request))
        return Response(serializers.PoolSerializer(pool).data)


# A desktop's snapshots or backups come whole (bounded by quotas and retention): no page, no
# filter (the desktops' filters are not theirs).
WHOLE_LIST: dict[str, Any] = {"pagination_class": None, "filter_backends": []}
ACTION_PARAMETER = OpenApiParameter("name", OpenApiTypes.STR, OpenApiParameter.PATH,
                                    enum=serializers.ACTION_NAMES,
                                    description="The action (the desktop's `actions` says "
                                                "which the caller may ask for now).")


class DesktopViewSet(viewsets.ReadOnlyModelViewSet[Desktop]):
    """The caller's desktops, those of the pools they operate, or all (helpdesk, admins)."""

    serializer_class = serializers.DesktopSerializer
    filterset_class = filters.DesktopFilter
    ordering_fields = ["created_at", "status_changed_at", "status"]

    def get_queryset(self) -> QuerySet[Desktop]:
        return (access.visible_desktops(self.request.user)
                .select_related("pool", "host", "owner", "image_version__image")
                .order_by("-created_at"))

    @extend_schema(request=None, parameters=[ACTION_PARAMETER], responses=OPERATION)
    @action(detail=True, methods=["post"], url_path=r"actions/(?P<name>[a-z_]+)")
    def act(self, request: Request, pk: str | None = None, name: str = "") -> Response:
        """Ask for an action; the worker carries it out (follow it with the operation)."""
        desktop = self.get_object()
        if name not in serializers.ACTION_NAMES:
            raise ServiceError(f"No action {name!r}: one of "
                               f"{', '.join(serializers.ACTION_NAMES)}.")
        return queued(request_action(request.user, desktop, name, client_address(request)))

    @extend_schema(methods=["GET"], responses=serializers.SnapshotSerializer(many=True),
                   description="The desktop's snapshots, parents before children.")
    @extend_schema(methods=["POST"], request=serializers.TakeSnapshotSerializer,
                   responses=OPERATION,
                   description="Take a snapshot: live (with the memory) of a running desktop, "
                               "of the disks of a stopped one.")
    @action(detail=True, methods=["get", "post"], **WHOLE_LIST)
    def snapshots(self, request: Request, pk: str | None = None) -> Response:
        answer = snapshot_views.take if request.method == "POST" else snapshot_views.of_desktop
        return answer(request, self.get_object())

    @extend_schema(methods=["GET"], responses=serializers.BackupSerializer(many=True),
                   description="The desktop's backups, newest first.")
    @extend_schema(methods=["POST"], request=None, responses=OPERATION,
                   description="Back the desktop up now (incremental when it can).")
    @action(detail=True, methods=["get", "post"], **WHOLE_LIST)
    def backups(self, request: Request, pk: str | None = None) -> Response:
        answer = backup_views.take if request.method == "POST" else backup_views.of_desktop
        return answer(request, self.get_object())

    @extend_schema(request=None, responses={200: serializers.TicketSerializer})
    @action(detail=True, methods=["post"], url_path="console-ticket")
    def console_ticket(self, request: Request, pk: str | None = None) -> Response:
        """A single-use console ticket for the caller's browser session (30 s)."""
        desktop = self.get_object()
        if isinstance(request.auth, ApiToken):
            raise AccessDenied("A console ticket belongs to a browser session: open the "
                               f"desktop's console_url ({desktop.pk}) signed in instead.")
        if not guards.allow_ticket(client_address(request), request.user.pk):
            raise ServiceError("Too many console tickets in a short time: wait a minute.")
        issued = console.issue_ticket(request.user, request.session.session_key, desktop)
        data = {"ticket": issued.ticket, "expires_in": issued.expires_in,
                "view_only": issued.view_only,
                "websocket": f"/ws/desktops/{desktop.pk}/"
                             f"{WEBSOCKET[desktop.display_protocol]}/"}
        return Response(data, headers={"Cache-Control": "no-store"})


class ImageViewSet(viewsets.ReadOnlyModelViewSet[GoldenImage]):
    serializer_class = serializers.GoldenImageSerializer
    permission_classes = WITH_PERMISSION
    required_permission = "vdi.view_goldenimage"
    queryset = GoldenImage.objects.order_by("name")
    ordering_fields = ["name", "created_at"]


class ImageVersionViewSet(viewsets.ReadOnlyModelViewSet[ImageVersion]):
    serializer_class = serializers.ImageVersionSerializer
    permission_classes = WITH_PERMISSION
    required_permission = "vdi.view_imageversion"
    queryset = ImageVersion.objects.select_related("image").order_by("image__name", "-number")
    filterset_class = filters.ImageVersionFilter
    ordering_fields = ["created_at", "number"]


class HostViewSet(viewsets.ReadOnlyModelViewSet[Host]):
    serializer_class = serializers.HostSerializer
    permission_classes = WITH_PERMISSION
    required_permission = "vdi.view_host"
    queryset = Host.objects.order_by("name")


class OperationViewSet(viewsets.ReadOnlyModelViewSet[Operation]):
    """Operations on the desktops the caller may see (all of them with the permission)."""

    serializer_class = serializers.OperationSerializer
    filterset_class = filters.OperationFilter
    ordering_fields = ["created_at", "finished_at"]

    def get_queryset(self) -> QuerySet[Operation]:
        user = self.request.user
        found = Operation.objects.select_related("requested_by").order_by("-created_at")
        if access.holds(user, "vdi.view_operation"):
            return found
        return found.filter(desktop__in=access.visible_desktops(user))


class AuditEventViewSet(viewsets.ReadOnlyModelViewSet[AuditEvent]):
    serializer_class = serializers.AuditEventSerializer
    permission_classes = WITH_PERMISSION
    required_permission = "vdi.view_auditevent"
    queryset = AuditEvent.objects.order_by("-created_at", "-pk")
    filterset_class = filters.AuditFilter
    ordering_fields = ["created_at"]


class QuotaViewSet(viewsets.ReadOnlyModelViewSet[UserQuota]):
    """Quotas set per user (administrators); everyone reads their own at ``me``."""

    serializer_class = serializers.UserQuotaSerializer
    permission_classes = WITH_PERMISSION
    required_permission = "vdi.view_userquota"
    queryset = UserQuota.objects.select_related("user").order_by("user__username")

    @extend_schema(responses={200: serializers.MyQuotaSerializer})
    @action(detail=False, methods=["get"], required_permission=None)
    def me(self, request: Request) -> Response:
        """The caller's limits and what their desktops hold now."""
        user = account(request)
        limits, used = quotas.limits_for(user), quotas.usage(user)
        return Response({
            "max_desktops": limits.desktops, "max_vcpus": limits.vcpus,
            "max_memory_mib": limits.memory_mib, "desktops": used.desktops,
            "vcpus": used.vcpus, "memory_mib": used.memory_mib})


class TokenViewSet(mixins.DestroyModelMixin, viewsets.ReadOnlyModelViewSet[ApiToken]):
    """The caller's own tokens (made on the portal's API tokens page); DELETE revokes."""

    serializer_class = serializers.TokenSerializer
    filterset_fields = ["revoked_at"]

    def get_queryset(self) -> QuerySet[ApiToken]:
        if getattr(self, "swagger_fake_view", False):  # the schema's look, with no caller
            return ApiToken.objects.none()
        return ApiToken.objects.filter(user=account(self.request))

    def perform_destroy(self, instance: ApiToken) -> None:
        tokens.revoke(account(self.request), instance.pk, client_address(self.request))

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        token = self.get_object()
        if token.revoked_at is not None:
            raise ServiceError("This token is revoked already.")
        self.perform_destroy(token)
        return Response(status=status.HTTP_204_NO_CONTENT)

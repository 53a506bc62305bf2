"""``/api/``: the endpoints, the OpenAPI schema and its browsable docs (served offline)."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from vdi.api import backup_views, snapshot_views, views

router = DefaultRouter()
router.include_root_view = False
router.register("pools", views.PoolViewSet, basename="api-pool")
router.register("desktops", views.DesktopViewSet, basename="api-desktop")
router.register("snapshots", snapshot_views.SnapshotViewSet, basename="api-snapshot")
router.register("backups", backup_views.BackupViewSet, basename="api-backup")
router.register("images", views.ImageViewSet, basename="api-image")
router.register("image-versions", views.ImageVersionViewSet, basename="api-image-version")
router.register("hosts", views.HostViewSet, basename="api-host")
router.register("operations", views.OperationViewSet, basename="api-operation")
router.register("audit", views.AuditEventViewSet, basename="api-audit")
router.register("quotas", views.QuotaViewSet, basename="api-quota")
router.register("tokens", views.TokenViewSet, basename="api-token")

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include(router.urls)),
]

"""What the admin's pages share: changes through the services, and pool-scoped access."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from vdi.auth_backends import operated_pool_ids
from vdi.roles import OPERATOR_PERMISSIONS
from vdi.services import records


def address(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


class AuditedAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Saves and deletes (one or in bulk) go through ``vdi.services.records``."""

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        records.save(request.user, obj, created=not change,
                     fields=form.changed_data if change else (), source_address=address(request))

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        records.delete(request.user, [obj], address(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        records.delete(request.user, list(queryset), address(request))


class PoolScopedAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Those who hold a permission everywhere see everything; a pool operator sees the pools
    they operate (``pool_field``: how a row names its pool) and may do there what their
    role allows (``PoolOperatorBackend``)."""

    pool_field = "pool"

    def _operated(self, request: HttpRequest) -> frozenset[int]:
        return operated_pool_ids(request.user)

    def _allows(self, request: HttpRequest, codename: str, obj: Any) -> bool:
        perm = f"{self.opts.app_label}.{codename}_{self.opts.model_name}"
        if request.user.has_perm(perm):
            return True
        if obj is None:  # the list: anyone whose role allows it on some pool they operate
            return bool(self._operated(request)) and perm in OPERATOR_PERMISSIONS
        return request.user.has_perm(perm, obj)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        rows = super().get_queryset(request)
        if request.user.has_perm(f"{self.opts.app_label}.view_{self.opts.model_name}"):
            return rows
        return rows.filter(**{f"{self.pool_field}__in": self._operated(request)})

    def has_module_permission(self, request: HttpRequest) -> bool:
        return super().has_module_permission(request) or bool(self._operated(request))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allows(request, "view", obj) or self._allows(request, "change", obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allows(request, "change", obj)


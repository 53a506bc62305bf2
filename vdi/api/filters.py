"""Query filters of the API's lists (django-filter).

A filter by another object's id is a plain number (``by_id``), never a choice among the
objects that exist: that would answer 400 for an id that does not exist and 200 for one that
does, someone else's included (an oracle). An id nobody may see simply finds nothing."""

from __future__ import annotations

import django_filters as filters

from vdi.models import AuditEvent, Backup, Desktop, ImageVersion, Operation, Pool, Snapshot


def by_id(field: str) -> filters.NumberFilter:
    return filters.NumberFilter(field_name=field, help_text=f"the {field}'s id")


class PoolFilter(filters.FilterSet):
    class Meta:
        model = Pool
        fields = ["enabled", "draining", "display_protocol", "assignment", "persistence"]


class DesktopFilter(filters.FilterSet):
    owner = filters.CharFilter(field_name="owner__username")
    host = filters.CharFilter(field_name="host__name")
    pool = by_id("pool")

    class Meta:
        model = Desktop
        fields = ["status", "pool", "owner", "host", "display_protocol"]


class ImageVersionFilter(filters.FilterSet):
    image = filters.CharFilter(field_name="image__name")

    class Meta:
        model = ImageVersion
        fields = ["image", "status", "profile"]


class OperationFilter(filters.FilterSet):
    since = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    desktop = by_id("desktop")
    image = by_id("image")

    class Meta:
        model = Operation
        fields = ["kind", "status", "desktop", "image", "since"]


class SnapshotFilter(filters.FilterSet):
    desktop = by_id("desktop")

    class Meta:
        model = Snapshot
        fields = ["desktop", "status", "kind", "current"]


class BackupFilter(filters.FilterSet):
    desktop = by_id("desktop")
    pool = by_id("pool")

    class Meta:
        model = Backup
        fields = ["desktop", "pool", "status", "kind"]


class AuditFilter(filters.FilterSet):
    actor = filters.CharFilter(field_name="actor_name")
    action_prefix = filters.CharFilter(field_name="action", lookup_expr="startswith")
    since = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = AuditEvent
        fields = ["action", "action_prefix", "actor", "target_type", "target_id", "since",
                  "until"]

"""What the API shows of each object. Read-only: changes go through the services."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from vdi import actions
from vdi.models import (
    ApiToken,
    AuditEvent,
    Backup,
    Desktop,
    GoldenImage,
    Host,
    ImageVersion,
    Operation,
    Pool,
    Snapshot,
    UserQuota,
)
from vdi.services.desktops import available_actions

ACTION_NAMES = [a.name for a in actions.REQUESTABLE]


class PoolSerializer(serializers.ModelSerializer[Pool]):
    image = serializers.CharField(source="image.name", read_only=True)

    class Meta:
        model = Pool
        fields = ["id", "name", "description", "image", "enabled", "draining", "assignment",
                  "persistence", "display_protocol", "vcpus", "memory_mib", "data_disk_gib",
                  "max_per_user", "min_ready", "max_size", "idle_minutes",
                  "max_session_minutes", "created_at"]
        read_only_fields = fields


class DesktopSerializer(serializers.ModelSerializer[Desktop]):
    name = serializers.CharField(source="__str__", read_only=True)
    status_label = serializers.CharField(source="get_status_display", read_only=True)
    pool_name = serializers.CharField(source="pool.name", read_only=True, default=None)
    owner = serializers.CharField(source="owner.username", read_only=True, default=None)
    host = serializers.CharField(source="host.name", read_only=True)
    image_version = serializers.CharField(source="image_version.__str__", read_only=True,
                                          default=None)
    addresses = serializers.SerializerMethodField()
    actions = serializers.SerializerMethodField()
    console_url = serializers.SerializerMethodField()

    class Meta:
        model = Desktop
        fields = ["id", "name", "status", "status_label", "pool", "pool_name", "owner", "host",
                  "image_version", "display_protocol", "vcpus", "memory_mib", "last_error",
                  "addresses", "actions", "console_url", "created_at", "assigned_at",
                  "status_changed_at", "guest_ready_at"]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_addresses(self, desktop: Desktop) -> list[str]:
        facts = desktop.guest_facts or {}
        return [str(a) for a in facts.get("addresses", []) if isinstance(a, str)]

    @extend_schema_field(serializers.ListField(child=serializers.ChoiceField(ACTION_NAMES)))
    def get_actions(self, desktop: Desktop) -> list[str]:
        """What the caller may ask for now."""
        return [offer.name for offer in available_actions(self.context["request"].user,
                                                           desktop)]

    def get_console_url(self, desktop: Desktop) -> str:
        return reverse("desktop-console", args=[desktop.pk])


class SnapshotSerializer(serializers.ModelSerializer[Snapshot]):
    created_by = serializers.CharField(source="created_by.username", read_only=True,
                                       default=None)

    class Meta:
        model = Snapshot
        fields = ["id", "desktop", "parent", "name", "description", "kind", "with_data_disk",
                  "frozen", "status", "current", "size_bytes", "created_by", "created_at"]
        read_only_fields = fields


class TakeSnapshotSerializer(serializers.Serializer[Any]):
    """What a new snapshot is asked with (the service checks the name and the limits)."""

    name = serializers.CharField(max_length=64)
    description = serializers.CharField(max_length=200, required=False, allow_blank=True,
                                        default="")
    with_data_disk = serializers.BooleanField(
        required=False, default=True,
        help_text="A stopped desktop's snapshot may leave its data disk out; a running "
                  "desktop's covers every disk.")


class BackupSerializer(serializers.ModelSerializer[Backup]):
    owner = serializers.CharField(source="owner.username", read_only=True, default=None)
    disks = serializers.SerializerMethodField()

    class Meta:
        model = Backup
        fields = ["id", "desktop", "desktop_name", "pool", "owner", "kind", "parent",
                  "status", "size_bytes", "disks", "created_at", "verified_at"]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_disks(self, backup: Backup) -> list[str]:
        """The disks it holds (vda: the system disk, vdb: the data disk)."""
        return sorted(backup.files)


class GoldenImageSerializer(serializers.ModelSerializer[GoldenImage]):
    class Meta:
        model = GoldenImage
        fields = ["id", "name", "description", "created_at"]
        read_only_fields = fields


class ImageVersionSerializer(serializers.ModelSerializer[ImageVersion]):
    image = serializers.CharField(source="image.name", read_only=True)

    class Meta:
        model = ImageVersion
        fields = ["id", "image", "number", "status", "profile", "readiness", "size_bytes",
                  "virtual_size_bytes", "sha256", "created_at"]
        read_only_fields = fields


class HostSerializer(serializers.ModelSerializer[Host]):
    class Meta:
        model = Host
        fields = ["id", "name", "libvirt_uri", "domain_type", "resolved_domain_type",
                  "cpu_capacity", "memory_capacity_mib", "enabled", "created_at"]
        read_only_fields = fields


class OperationSerializer(serializers.ModelSerializer[Operation]):
    requested_by = serializers.CharField(source="requested_by.username", read_only=True,
                                         default=None)

    class Meta:
        model = Operation
        fields = ["id", "kind", "desktop", "image", "target", "requested_by", "status",
                  "progress", "step", "error", "attempts", "waiting_since", "created_at",
                  "started_at", "finished_at"]
        read_only_fields = fields


class AuditEventSerializer(serializers.ModelSerializer[AuditEvent]):
    class Meta:
        model = AuditEvent
        fields = ["id", "created_at", "actor_name", "action", "target_type", "target_id",
                  "target_repr", "source_address", "details"]
        read_only_fields = fields


class UserQuotaSerializer(serializers.ModelSerializer[UserQuota]):
    user = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = UserQuota
        fields = ["id", "user", "max_desktops", "max_vcpus", "max_memory_mib",
                  "max_snapshots", "max_snapshot_gib"]
        read_only_fields = fields


class MyQuotaSerializer(serializers.Serializer[Any]):
    max_desktops = serializers.IntegerField()
    max_vcpus = serializers.IntegerField()
    max_memory_mib = serializers.IntegerField()
    desktops = serializers.IntegerField(help_text="Desktops held now.")
    vcpus = serializers.IntegerField(help_text="vCPUs held now.")
    memory_mib = serializers.IntegerField(help_text="Memory held now.")


class TicketSerializer(serializers.Serializer[Any]):
    ticket = serializers.CharField()
    expires_in = serializers.IntegerField()
    view_only = serializers.BooleanField()
    websocket = serializers.CharField(help_text="Path of the console websocket; send the "
                                      "ticket as subprotocol 'vdi-ticket.<ticket>'.")


class TokenSerializer(serializers.ModelSerializer[ApiToken]):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "scopes", "created_at", "expires_at",
                  "last_used_at", "revoked_at"]
        read_only_fields = fields

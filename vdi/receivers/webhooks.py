"""Every audit row, whoever wrote it, goes to the webhooks that ask for its action: the
deliveries are written in the row's transaction and sent when it commits."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save
from django.dispatch import receiver

from vdi.models import AuditEvent
from vdi.services import webhooks


@receiver(post_save, sender=AuditEvent, dispatch_uid="vdi.webhooks.audit_event")
def audit_event_saved(sender: Any, instance: AuditEvent, created: bool, **kwargs: Any) -> None:
    if created:
        webhooks.queue_for(instance)

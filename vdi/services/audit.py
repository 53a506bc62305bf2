"""Writing audit rows."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, models, transaction

from vdi.models import AuditEvent
from vdi.services.access import Account, User


def record(
    actor: User | None,
    action: str,
    target: models.Model | None = None,
    source_address: str | None = None,
    **details: Any,
) -> AuditEvent:
    """Append one audit row: who did what to which object, from where. An actor whose
    account is already gone (a console closing because it was deleted) is kept by name."""
    user = actor if isinstance(actor, Account) else None
    event = AuditEvent(
        actor=user,
        actor_name=user.get_username() if user is not None else "",
        action=action,
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_repr=str(target)[:200] if target is not None else "",
        source_address=source_address or None,
        details=details,
    )
    try:
        with transaction.atomic():
            event.save()
    except IntegrityError:
        if user is None:
            raise
        event.pk, event.actor = None, None
        event.save()
    return event

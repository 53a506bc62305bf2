"""Administrators' changes to pools that are not plain edits: draining."""

from __future__ import annotations

from django.db import transaction

from vdi.models import Pool
from vdi.services import audit
from vdi.services.access import User


def set_draining(actor: User, pool: Pool, draining: bool, source_address: str | None = None
                 ) -> bool:
    """Stop (or resume) new claims from ``pool``; desktops in use keep running.

    Returns False when the pool already was in that state (nothing changed, nothing audited).
    """
    with transaction.atomic():
        changed = Pool.objects.filter(pk=pool.pk).exclude(draining=draining).update(
            draining=draining)
        if changed:
            pool.draining = draining
            audit.record(actor, "pool.drain" if draining else "pool.undrain", pool,
                         source_address)
    return bool(changed)

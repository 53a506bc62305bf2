"""Telling open pages that something changed. Called by the state machine, the worker's
progress and the services; sent once the transaction commits, to every group that shows it."""

from __future__ import annotations

import logging

from django.db import transaction

from vdi.console.notify import tell
from vdi.models import Desktop

log = logging.getLogger(__name__)
CHANGED = "live.changed"  # {"kind": "desktop", "id": int}
OPERATORS = "live-operators"  # those who see every desktop (helpdesk, administrators)


def user_group(user_id: int) -> str:
    return f"live-user-{user_id}"


def pool_group(pool_id: int) -> str:
    return f"live-pool-{pool_id}"


def _audience(desktop_id: int) -> set[str]:
    row = Desktop.objects.filter(pk=desktop_id).values("owner_id", "pool_id").first()
    if row is None:
        return set()
    groups = {pool_group(row["pool_id"])} if row["pool_id"] else set()
    if row["owner_id"]:
        groups.add(user_group(row["owner_id"]))
    return groups


def desktop_changed(desktop_id: int) -> None:
    """The desktop's state, owner or step changed: its owner (before and after, should it
    change hands in this transaction), its pool's operators and the operators hear of it."""
    before = _audience(desktop_id)

    def send() -> None:
        message = {"type": CHANGED, "kind": "desktop", "id": desktop_id}
        for group in sorted(before | _audience(desktop_id) | {OPERATORS}):
            tell(group, message)

    transaction.on_commit(send)

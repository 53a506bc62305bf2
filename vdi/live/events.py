"""Telling open pages that something changed. Called by the state machine, the worker's
progress and the services; sent once the transaction commits, to every group that shows it."""

from __future__ import annotations

import logging

from django.db import transaction

from vdi.console.notify import tell
from vdi.models import Desktop

log = logging.getLogger(__name__)
CHANGED = "live.changed"  # {"kind": "desktop" | "thumbnail" | "reconcile" | "rollout", "id": int}
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


def thumbnail_taken(desktop_id: int, pool_id: int | None) -> None:
    """A new thumbnail of the desktop's screen is stored: the dashboards that may show it
    (the operators, its pool's operators) fetch that picture again, and nothing else. Its
    owner's pages are not told: they show no thumbnail."""
    message = {"type": CHANGED, "kind": "thumbnail", "id": desktop_id}
    groups = {OPERATORS} | ({pool_group(pool_id)} if pool_id else set())

    def send() -> None:
        for group in sorted(groups):
            tell(group, message)

    transaction.on_commit(send)


def reconciled(host_id: int) -> None:
    """A reconciler pass on the host found something (or failed): the operators' dashboards
    show its findings."""
    message = {"type": CHANGED, "kind": "reconcile", "id": host_id}
    transaction.on_commit(lambda: tell(OPERATORS, message))


def rollout_changed(rollout_id: int, pool_id: int) -> None:
    """A rollout moved on (or was paused, resumed, rolled back): the dashboards that show its
    pool (the operators, the pool's operators) show where it stands."""
    message = {"type": CHANGED, "kind": "rollout", "id": rollout_id}
    groups = {OPERATORS, pool_group(pool_id)}

    def send() -> None:
        for group in sorted(groups):
            tell(group, message)

    transaction.on_commit(send)

"""Snapshots of persistent desktops: take, revert, delete, and the tree.

A running desktop's snapshot is live (its memory and every disk, through libvirt); a stopped
desktop's is offline (``qemu-img``) and may leave the data disk out, since nothing in memory
then depends on it. UEFI desktops have offline snapshots only (libvirt 9.0 refuses internal
snapshots with pflash firmware). Limits per user (``UserQuota``, defaults from the settings)
and per pool, on count and on space, each refuse with their own words.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet, Sum
from django.db.models.functions import Coalesce

from vdi import actions
from vdi.choices import DesktopStatus, DisplayProtocol, Profile, SnapshotKind, SnapshotStatus
from vdi.models import Desktop, Operation, Snapshot, UserQuota
from vdi.services import access
from vdi.services.access import Account, User
from vdi.services.desktops import request_named_action
from vdi.services.errors import ServiceError

NAME = re.compile(r"[\w][\w .,:()+-]{0,63}")
GIB = 1024**3


class SnapshotLimit(ServiceError):
    pass


@dataclass(frozen=True)
class Limits:
    count: int
    gib: int


@dataclass(frozen=True)
class Node:
    snapshot: Snapshot
    depth: int


def tree(desktop: Desktop) -> list[Node]:
    """The desktop's snapshots, parents before children (depth-first, oldest first)."""
    snapshots = list(Snapshot.objects.filter(desktop=desktop).select_related("created_by"))
    children: dict[int | None, list[Snapshot]] = {}
    for snapshot in snapshots:
        children.setdefault(snapshot.parent_id, []).append(snapshot)
    ordered: list[Node] = []

    def walk(parent: int | None, depth: int) -> None:
        for child in children.get(parent, []):
            ordered.append(Node(child, depth))
            walk(child.pk, depth + 1)

    walk(None, 0)
    return ordered


def visible(user: User) -> QuerySet[Snapshot]:
    """The snapshots of the desktops whose snapshots ``user`` may take, revert and delete."""
    return Snapshot.objects.filter(desktop__in=access.desktops_for(user, actions.SNAPSHOT))


def take(user: User, desktop: Desktop, name: str, description: str = "",
         with_data_disk: bool = True, source_address: str | None = None) -> Operation:
    desktop.refresh_from_db()
    kind = _kind(desktop, with_data_disk)
    name = _valid_name(desktop, name)
    with transaction.atomic():
        check_limits(desktop, kind)
        current = Snapshot.objects.filter(desktop=desktop, current=True).first()
        snapshot = Snapshot.objects.create(
            desktop=desktop, parent=current, name=name, description=description[:200],
            tag=f"vdi-{uuid.uuid4().hex[:16]}", kind=kind,
            with_data_disk=kind == SnapshotKind.LIVE or (with_data_disk
                                                         and bool(desktop.data_disk_path)),
            created_by=user if isinstance(user, Account) else None)
        return request_named_action(user, desktop, actions.SNAPSHOT, {"snapshot": snapshot.pk},
                                    source_address, snapshot=name, kind=kind)


def revert(user: User, snapshot: Snapshot, source_address: str | None = None) -> Operation:
    _ready(snapshot)
    return request_named_action(user, snapshot.desktop, actions.REVERT,
                                {"snapshot": snapshot.pk}, source_address,
                                snapshot=snapshot.name)


def delete(user: User, snapshot: Snapshot, source_address: str | None = None) -> Operation:
    _ready(snapshot)
    desktop = snapshot.desktop
    if snapshot.kind == SnapshotKind.OFFLINE and desktop.status != DesktopStatus.STOPPED:
        raise ServiceError("Stop the desktop to delete a snapshot taken while it was stopped "
                           "(its disks are in use while it runs).")
    with transaction.atomic():
        updated = Snapshot.objects.filter(pk=snapshot.pk, status=SnapshotStatus.READY).update(
            status=SnapshotStatus.DELETING)
        if updated != 1:
            raise ServiceError(f"The snapshot {snapshot.name} is already being deleted.")
        return request_named_action(user, desktop, actions.DELETE_SNAPSHOT,
                                    {"snapshot": snapshot.pk}, source_address,
                                    snapshot=snapshot.name)


def _ready(snapshot: Snapshot) -> None:
    if snapshot.status != SnapshotStatus.READY:
        raise ServiceError(f"The snapshot {snapshot.name} is {snapshot.get_status_display()}.")


def _kind(desktop: Desktop, with_data_disk: bool) -> SnapshotKind:
    if desktop.status == DesktopStatus.RUNNING:
        if desktop.profile == Profile.WINDOWS:
            raise ServiceError(
                "A running UEFI desktop can't be snapshotted (libvirt refuses internal "
                "snapshots with UEFI firmware). Stop it to take a snapshot of its disks.")
        if desktop.profile == Profile.LINUX_DESKTOP and \
                desktop.display_protocol == DisplayProtocol.VNC:
            raise ServiceError(
                "This desktop's VNC clipboard channel (QEMU's vdagent) can't be saved with its "
                "memory, so it has no live snapshots. Stop it to take a snapshot of its disks "
                "(SPICE pools have live snapshots).")
        if not with_data_disk and desktop.data_disk_path:
            raise ServiceError(
                "A running desktop's snapshot holds its memory, so it covers every disk: "
                "reverting with the data disk left out would corrupt it. Stop the desktop to "
                "take a snapshot without the data disk.")
        return SnapshotKind.LIVE
    if desktop.status == DesktopStatus.STOPPED:
        return SnapshotKind.OFFLINE
    raise ServiceError(f"Snapshots are taken of running or stopped desktops; this one is "
                       f"{desktop.get_status_display()}.")


def _valid_name(desktop: Desktop, name: str) -> str:
    name = name.strip()
    if not NAME.fullmatch(name):
        raise ServiceError("Name the snapshot with 1 to 64 letters, digits, spaces or "
                           ". , : ( ) + - _ (starting with a letter or digit).")
    if Snapshot.objects.filter(desktop=desktop, name=name).exists():
        raise ServiceError(f"This desktop already has a snapshot named {name}.")
    return name


def limits_of(desktop: Desktop) -> tuple[Limits, Limits]:
    """The owner's limits and the pool's."""
    quota = UserQuota.objects.filter(user=desktop.owner).first() if desktop.owner else None
    user = (Limits(quota.max_snapshots, quota.max_snapshot_gib) if quota is not None
            else Limits(settings.DEFAULT_MAX_SNAPSHOTS, settings.DEFAULT_MAX_SNAPSHOT_GIB))
    pool = desktop.pool
    assert pool is not None  # snapshots are of persistent (pool) desktops
    return user, Limits(pool.max_snapshots, pool.max_snapshot_gib)


def check_limits(desktop: Desktop, kind: SnapshotKind) -> None:
    """Refuse, saying which limit, when one more snapshot is too many or too big. A live
    snapshot is counted at its memory size before it is taken (it saves at most that)."""
    user, pool = limits_of(desktop)
    expected = desktop.memory_mib * 1024**2 if kind == SnapshotKind.LIVE else 0
    mine = _used(Snapshot.objects.filter(desktop__owner=desktop.owner))
    pools = _used(Snapshot.objects.filter(desktop__pool=desktop.pool))
    if mine[0] + 1 > user.count:
        raise SnapshotLimit(f"Your desktops have {mine[0]} snapshot(s): your limit is "
                            f"{user.count}. Delete one first.")
    if mine[1] + expected > user.gib * GIB:
        raise SnapshotLimit(f"Your snapshots take {_gib(mine[1])} GiB of your {user.gib} GiB "
                            f"and this one may need {_gib(expected)} GiB. Delete one first.")
    if pools[0] + 1 > pool.count:
        raise SnapshotLimit(f"The pool {desktop.pool} allows {pool.count} snapshot(s) in all "
                            "and has them.")
    if pools[1] + expected > pool.gib * GIB:
        raise SnapshotLimit(f"The pool {desktop.pool}'s snapshots take {_gib(pools[1])} GiB "
                            f"of its {pool.gib} GiB; this one may need {_gib(expected)} GiB.")


def _used(snapshots: QuerySet[Snapshot]) -> tuple[int, int]:
    totals = snapshots.aggregate(size=Coalesce(Sum("size_bytes"), 0))
    return snapshots.count(), int(totals["size"])


def _gib(size: int) -> str:
    return f"{size / GIB:.1f}"

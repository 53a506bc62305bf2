"""Desktop lifecycle requests: create, start, stop, restart, reset, delete.

Each public function checks access, claims the state by compare-and-set, writes the audit row
and the Operation, and enqueues the worker task once the transaction commits. None calls
libvirt. ``perform`` is the same without the access check, for the system's own jobs
(policies, pool maintenance) and for services that checked access themselves.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError

from vdi import state
from vdi.choices import OperationKind, OperationStatus
from vdi.models import ConsoleTicket, Desktop, Operation, Pool
from vdi.services import access, audit, quotas
from vdi.services.access import Account, User
from vdi.services.errors import AccessDenied, NotReady, ServiceError
from vdi.services.placement import choose_host

log = logging.getLogger(__name__)
USER_ACTIONS = ("start", "stop", "restart", "reset", "delete")
ENDS_CONSOLES = ("stop", "restart", "reset", "release", "delete")


def _enqueue(desktop: Desktop, operation: Operation) -> None:
    transaction.on_commit(lambda: publish(desktop.pk, operation.pk, operation.kind,
                                          desktop.host.queue))


def publish(desktop_id: int, operation_id: int, kind: str, queue: str) -> None:
    """Send the task (Celery retries a few times); if the broker stays unreachable, say so on
    the desktop and the Operation at once instead of leaving them waiting."""
    from vdi.tasks import TASKS

    try:
        TASKS[kind].apply_async(args=(desktop_id, operation_id), queue=queue)
    except (KombuOperationalError, ConnectionError, OSError) as exc:
        log.error("could not queue %s of desktop %s: %s", kind, desktop_id, exc)
        reason = f"the task queue is unreachable ({exc}); try again in a moment"
        state.fail(desktop_id, kind, reason)
        Operation.objects.filter(pk=operation_id).update(
            status=OperationStatus.FAILED, error=reason, finished_at=timezone.now())


def _operation(kind: str, desktop: Desktop, actor: User | None) -> Operation:
    return Operation.objects.create(
        kind=kind,
        desktop=desktop,
        target=str(desktop),
        requested_by=actor if isinstance(actor, Account) else None,
    )


def new_desktop(
    pool: Pool, owner: Account | None, actor: User | None, source_address: str | None = None
) -> Desktop:
    """Record a desktop of ``pool`` (for ``owner``, or unassigned) and enqueue its provisioning.

    Callers check entitlement and quotas; this checks only that the pool can make one.
    """
    version = pool.image.latest_ready_version()
    if version is None:
        raise NotReady(f"The image of pool {pool.name} has no ready version yet.")
    with transaction.atomic():
        host = choose_host(pool.memory_mib, pool.vcpus)
        domain_name = f"{settings.DOMAIN_PREFIX}-{uuid.uuid4().hex[:12]}"
        storage = Path(host.storage_dir)
        desktop = Desktop.objects.create(
            owner=owner,
            pool=pool,
            host=host,
            image_version=version,
            domain_name=domain_name,
            disk_path=str(storage / f"{domain_name}.qcow2"),
            data_disk_path=str(storage / f"{domain_name}-data.qcow2") if pool.is_persistent
            else "",
            serial_log_path=str(settings.LOG_DIR / f"{domain_name}.log"),
            vnc_password=secrets.token_urlsafe(6)[:8],  # VNC auth uses 8 bytes at most
            vcpus=pool.vcpus,
            memory_mib=pool.memory_mib,
            assigned_at=timezone.now() if owner is not None else None,
        )
        operation = _operation(OperationKind.PROVISION, desktop, actor)
        audit.record(actor, "desktop.create", desktop, source_address, pool=pool.name,
                     host=host.name, image_version=str(version),
                     owner=owner.get_username() if owner else "")
        _enqueue(desktop, operation)
    return desktop


def create_desktop(user: User, pool: Pool, source_address: str | None = None) -> Desktop:
    """A new desktop for ``user`` from ``pool``'s newest image version, provisioned and started."""
    if not isinstance(user, Account) or not access.can_use_pool(user, pool):
        raise AccessDenied(f"You may not use the pool {pool.name}.")
    with transaction.atomic():
        quotas.check_room(user, pool)
        return new_desktop(pool, user, user, source_address)


def perform(
    desktop: Desktop, action: str, actor: User | None, source_address: str | None = None,
    **details: Any,
) -> Operation:
    """Claim ``desktop`` for ``action`` and enqueue the work (no access check)."""
    with transaction.atomic():
        state.claim(desktop, action)
        if action == "release":
            Desktop.objects.filter(pk=desktop.pk).update(owner=None, assigned_at=None)
        if action in ENDS_CONSOLES:  # a ticket must not outlive the screen it was for
            ConsoleTicket.objects.filter(desktop=desktop, used_at__isnull=True).delete()
        operation = _operation(action, desktop, actor)
        audit.record(actor, f"desktop.{action}", desktop, source_address, **details)
        _enqueue(desktop, operation)
    return operation


def request_action(
    user: User, desktop: Desktop, action: str, source_address: str | None = None
) -> Operation:
    """Claim ``desktop`` for a user's ``action`` (start, stop, restart, reset, delete)."""
    if action not in USER_ACTIONS:
        raise ValueError(f"unknown desktop action {action!r}")
    if not access.can_manage_desktop(user, desktop):
        raise AccessDenied("You may not manage this desktop.")
    if action == "delete" and desktop.pool.is_automatic and not access.is_admin(user):
        raise ServiceError("Desktops of an automatic pool are released, not deleted.")
    return perform(desktop, action, user, source_address)


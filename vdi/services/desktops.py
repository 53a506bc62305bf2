"""Desktop lifecycle requests: create, start, stop, restart, delete.

Each function checks access, claims the state by compare-and-set, writes the audit row and the
Operation, and enqueues the worker task once the transaction commits. None calls libvirt.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from django.conf import settings
from django.db import transaction

from vdi import state
from vdi.choices import OperationKind
from vdi.models import Desktop, Operation, Pool
from vdi.services import access, audit
from vdi.services.access import Account, User
from vdi.services.errors import AccessDenied, NotReady
from vdi.services.placement import choose_host


def _enqueue(desktop: Desktop, operation: Operation) -> None:
    from vdi.tasks import TASKS

    task = TASKS[operation.kind]
    queue = desktop.host.queue
    transaction.on_commit(
        lambda: task.apply_async(args=(desktop.pk, operation.pk), queue=queue)
    )


def _operation(kind: str, desktop: Desktop, user: User) -> Operation:
    return Operation.objects.create(
        kind=kind,
        desktop=desktop,
        target=str(desktop),
        requested_by=user if isinstance(user, Account) else None,
    )


def create_desktop(user: User, pool: Pool, source_address: str | None = None) -> Desktop:
    """A new desktop for ``user`` from ``pool``'s newest image version, provisioned and started."""
    if not access.can_use_pool(user, pool) or not isinstance(user, Account):
        raise AccessDenied(f"You may not use the pool {pool.name}.")
    version = pool.image.latest_ready_version()
    if version is None:
        raise NotReady(f"The image of pool {pool.name} has no ready version yet.")
    with transaction.atomic():
        host = choose_host(pool.memory_mib, pool.vcpus)
        domain_name = f"{settings.DOMAIN_PREFIX}-{uuid.uuid4().hex[:12]}"
        desktop = Desktop.objects.create(
            owner=user,
            pool=pool,
            host=host,
            image_version=version,
            domain_name=domain_name,
            disk_path=str(Path(host.storage_dir) / f"{domain_name}.qcow2"),
            serial_log_path=str(settings.LOG_DIR / f"{domain_name}.log"),
            vcpus=pool.vcpus,
            memory_mib=pool.memory_mib,
        )
        operation = _operation(OperationKind.PROVISION, desktop, user)
        audit.record(user, "desktop.create", desktop, source_address,
                     pool=pool.name, host=host.name, image_version=str(version))
        _enqueue(desktop, operation)
    return desktop


def request_action(
    user: User, desktop: Desktop, action: str, source_address: str | None = None
) -> Operation:
    """Claim ``desktop`` for ``action`` (start, stop, restart, delete) and enqueue the work."""
    if action not in ("start", "stop", "restart", "delete"):
        raise ValueError(f"unknown desktop action {action!r}")
    if not access.can_manage_desktop(user, desktop):
        raise AccessDenied("You may not manage this desktop.")
    with transaction.atomic():
        state.claim(desktop, action)
        operation = _operation(action, desktop, user)
        audit.record(user, f"desktop.{action}", desktop, source_address)
        _enqueue(desktop, operation)
    return operation


def start_desktop(user: User, desktop: Desktop, source_address: str | None = None) -> Operation:
    return request_action(user, desktop, "start", source_address)


def stop_desktop(user: User, desktop: Desktop, source_address: str | None = None) -> Operation:
    return request_action(user, desktop, "stop", source_address)


def restart_desktop(user: User, desktop: Desktop, source_address: str | None = None) -> Operation:
    return request_action(user, desktop, "restart", source_address)


def delete_desktop(user: User, desktop: Desktop, source_address: str | None = None) -> Operation:
    return request_action(user, desktop, "delete", source_address)

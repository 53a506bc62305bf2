"""Desktop lifecycle requests: create, and every action of ``vdi.actions``.

Each request checks access, claims the state by compare-and-set, writes the audit row and the
Operation, and sends the worker task by name once the transaction commits. None calls libvirt.
``perform`` is the same without the access check, for the system's own jobs (policies, pool
maintenance) and for services that checked access themselves; the action's rules hold for
everyone.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError

from vdi import actions, state, task_names
from vdi.actions import PROVISION, DesktopAction
from vdi.choices import DesktopStatus, NetworkMode, OperationStatus, SnapshotStatus
from vdi.console.codes import CloseCode
from vdi.console.notify import close_consoles
from vdi.live import events as live
from vdi.models import ConsoleTicket, Desktop, Operation, Pool, Snapshot
from vdi.models.desktops import new_mac_address, new_vnc_password
from vdi.services import access, audit, dispatch, quotas
from vdi.services.access import Account, Standing, User
from vdi.services.errors import AccessDenied, NotReady, ServiceError
from vdi.services.placement import choose_host

log = logging.getLogger(__name__)
QUEUE_DOWN = "The task queue is unreachable, so nothing was started; try again in a moment."
MAC_TRIES = 8  # 2^24 MACs: a second collision in a row is already one in millions


@dataclass(frozen=True)
class Offer:
    """An action a user may ask for on a desktop now, with its words."""

    name: str
    label: str
    confirm: str


def enqueue_operation(desktop: Desktop, operation: Operation) -> None:
    queue = desktop.host.queue
    transaction.on_commit(lambda: publish(desktop.pk, operation.pk, operation.kind, queue))


def publish(desktop_id: int, operation_id: int, action: str, queue: str) -> None:
    """Send the task (Celery retries a few times); if the broker stays unreachable, say so on
    the desktop and the Operation at once instead of leaving them waiting."""
    try:
        dispatch.send(task_names.DESKTOP_ACTION, (action, desktop_id, operation_id), queue)
    except (KombuOperationalError, ConnectionError, OSError) as exc:
        log.error("could not queue %s of desktop %s: %s", action, desktop_id, exc)
        params = Operation.objects.filter(pk=operation_id).values_list("params",
                                                                      flat=True).first() or {}
        _never_sent(params)
        origin = params.get("origin")  # an action that returns goes back where it was
        state.fail(desktop_id, action, QUEUE_DOWN, detail=f"publish to {queue}: {exc}",
                   origin=DesktopStatus(origin) if origin in DesktopStatus.values else None)
        Operation.objects.filter(pk=operation_id).update(
            status=OperationStatus.FAILED, error=QUEUE_DOWN, detail=str(exc),
            finished_at=timezone.now())


def _never_sent(params: dict[str, Any]) -> None:
    """The row the request put in a "being ..." state goes back as it was: nothing was done
    (a snapshot to take goes, one to delete is ready again)."""
    snapshot = params.get("snapshot")
    if snapshot:
        Snapshot.objects.filter(pk=snapshot, status=SnapshotStatus.CREATING).delete()
        Snapshot.objects.filter(pk=snapshot, status=SnapshotStatus.DELETING).update(
            status=SnapshotStatus.READY)


def new_operation(action: DesktopAction, desktop: Desktop, actor: User | None,
               params: dict[str, Any] | None = None) -> Operation:
    return Operation.objects.create(
        kind=action.name,
        desktop=desktop,
        target=str(desktop),
        requested_by=actor if isinstance(actor, Account) else None,
        params=params or {},
    )


def new_desktop(
    pool: Pool, owner: Account | None, actor: User | None, source_address: str | None = None,
    params: dict[str, Any] | None = None,
) -> Desktop:
    """Record a desktop of ``pool`` (for ``owner``, or unassigned) and enqueue its provisioning.

    Callers check entitlement and quotas; this checks only that the pool can make one.
    """
    version = pool.version_for_new()
    if version is None:
        raise NotReady(f"The image of pool {pool.name} has no ready version yet.")
    with transaction.atomic():
        host = choose_host(pool.memory_mib, pool.vcpus, pool)
        domain_name = f"{settings.DOMAIN_PREFIX}-{uuid.uuid4().hex[:12]}"
        storage = Path(host.storage_dir)
        desktop = _insert(
            # a pool that may have a network (its host's default included) reserves a MAC,
            # so a host's new default applies at the desktop's next boot
            with_mac=pool.network_mode != NetworkMode.NONE,
            owner=owner,
            pool=pool,
            host=host,
            image_version=version,
            domain_name=domain_name,
            disk_path=str(storage / f"{domain_name}.qcow2"),
            data_disk_path=str(storage / f"{domain_name}-data.qcow2") if pool.is_persistent
            else "",
            serial_log_path=str(settings.LOG_DIR / f"{domain_name}.log"),
            vnc_password=new_vnc_password(),
            vcpus=pool.vcpus,
            memory_mib=pool.memory_mib,
            assigned_at=timezone.now() if owner is not None else None,
        )
        operation = new_operation(PROVISION, desktop, actor, params)
        audit.record(actor, "desktop.create", desktop, source_address, pool=pool.name,
                     host=host.name, image_version=str(version),
                     owner=owner.get_username() if owner else "")
        enqueue_operation(desktop, operation)
    return desktop


def _insert(with_mac: bool, **fields: Any) -> Desktop:
    """The desktop's row, with a MAC no other desktop has: MACs are random (24 bits), so a
    draw that collides (the unique constraint refuses it, in a savepoint that leaves the
    caller's transaction usable) is drawn again."""
    for _ in range(MAC_TRIES):
        mac = new_mac_address() if with_mac else ""
        try:
            with transaction.atomic():
                return Desktop.objects.create(mac_address=mac, **fields)
        except IntegrityError:
            if not mac or not Desktop.objects.filter(mac_address=mac).exists():
                raise  # not the MAC: another constraint
            log.info("MAC %s is taken; drawing another", mac)
    raise ServiceError("No free network address (MAC) was found for a new desktop; "
                       "try again.")


def create_desktop(user: User, pool: Pool, source_address: str | None = None) -> Desktop:
    """A new desktop for ``user`` from ``pool``'s newest image version, provisioned and started."""
    if not isinstance(user, Account) or not access.can_use_pool(user, pool):
        raise AccessDenied(f"You may not use the pool {pool.name}.")
    with transaction.atomic():
        quotas.check_room(user, pool)
        return new_desktop(pool, user, user, source_address)


def perform(
    desktop: Desktop, name: str, actor: User | None, source_address: str | None = None,
    params: dict[str, Any] | None = None, **details: Any,
) -> Operation:
    """Claim ``desktop`` for the action ``name`` and enqueue the work (no access check).
    ``params`` go to the worker's step (on the Operation), ``details`` to the audit trail.

    Raises ServiceError when a rule of the action refuses, TransitionRefused when the
    desktop's state does not allow it.
    """
    return _perform(desktop, actions.get(name), actor, source_address, as_owner=False,
                    params=params, **details)


def _perform(
    desktop: Desktop, action: DesktopAction, actor: User | None, source_address: str | None,
    *, as_owner: bool, params: dict[str, Any] | None = None, **details: Any,
) -> Operation:
    reason = action.refusal(desktop, as_owner=as_owner)
    if reason is not None:
        raise ServiceError(reason)
    with transaction.atomic():
        if action.returns:  # it goes back to the state it is claimed from: remember which
            desktop.refresh_from_db(fields=["status"])
            params = {**(params or {}), "origin": desktop.status}
            state.claim(desktop, action.name, only_from=desktop.status)
        else:
            state.claim(desktop, action.name)
        if action.gives_back:
            Desktop.objects.filter(pk=desktop.pk).update(owner=None, assigned_at=None)
        if action.ends_consoles:  # a ticket must not outlive the screen it was for
            ConsoleTicket.objects.filter(desktop=desktop, used_at__isnull=True).delete()
            code, why = ((CloseCode.HANDED_OVER, "the desktop went back to its pool")
                         if action.gives_back else
                         (CloseCode.DESKTOP_STOPPED, f"the desktop is going to {action.name}"))
            transaction.on_commit(lambda: close_consoles(desktop.pk, code, why))
        operation = new_operation(action, desktop, actor, params)
        audit.record(actor, action.audit_action, desktop, source_address, **details)
        enqueue_operation(desktop, operation)
    return operation


def request_action(
    user: User, desktop: Desktop, name: str, source_address: str | None = None, **details: Any
) -> Operation:
    """A person asks for the action ``name`` on ``desktop``.

    Raises KeyError for an action people can't ask for, AccessDenied, ServiceError (a rule
    refused, with the reason) or TransitionRefused (the desktop's state does not allow it).
    """
    action = actions.get(name)
    if action not in actions.REQUESTABLE:
        raise KeyError(name)
    footing = access.standing(user, action, desktop)
    if footing is Standing.NONE:
        raise AccessDenied(f"You may not {action.name} this desktop.")
    return _perform(desktop, action, user, source_address,
                    as_owner=footing is Standing.OWNER, **details)


def request_named_action(user: User, desktop: Desktop, action: DesktopAction,
                         params: dict[str, Any], source_address: str | None = None,
                         **details: Any) -> Operation:
    """An action that names what it acts on (a snapshot): the access rules of
    ``request_action``, with ``params`` for the worker's step."""
    footing = access.standing(user, action, desktop)
    if footing is Standing.NONE:
        raise AccessDenied(f"You may not {action.label.lower()} of this desktop.")
    return _perform(desktop, action, user, source_address,
                    as_owner=footing is Standing.OWNER, params=params, **details)


def available_actions(user: User, desktop: Desktop) -> list[Offer]:
    """The actions ``user`` may ask for on ``desktop`` in its current state, with their words."""
    offers = []
    for action in actions.REQUESTABLE:
        if desktop.status not in action.allowed_from:
            continue
        footing = access.standing(user, action, desktop)
        if footing is Standing.NONE:
            continue
        if action.refusal(desktop, as_owner=footing is Standing.OWNER) is None:
            offers.append(Offer(action.name, action.label, action.confirmation(desktop)))
    return offers


def hand_over(actor: User, desktop: Desktop, new_owner: Account,
              source_address: str | None = None) -> None:
    """Give a persistent desktop, with its data, to another person: an explicit, audited
    administrator action. The desktop must be stopped (it gets a new console password at its
    next start); the new owner must be entitled to the pool and have room in their quota.
    A non-persistent desktop is never handed on: it is released (reset) and claimed."""
    if not access.holds(actor, actions.HANDOVER, desktop):
        raise AccessDenied("You may not hand this desktop over.")
    if desktop.pool is None or not desktop.pool.is_persistent:
        raise ServiceError("Only a persistent desktop is handed over with its data; release "
                           "a non-persistent one (it is reset) and let the person claim one.")
    if desktop.owner_id == new_owner.pk:
        raise ServiceError(f"{desktop} already belongs to {new_owner}.")
    if not access.can_use_pool(new_owner, desktop.pool):
        raise ServiceError(f"{new_owner} may not use the pool {desktop.pool.name}.")
    with transaction.atomic():
        quotas.check_room(new_owner, desktop.pool)
        previous = desktop.owner.get_username() if desktop.owner else ""
        live.desktop_changed(desktop.pk)  # the previous owner's page hears of it too
        moved = Desktop.objects.filter(
            pk=desktop.pk, status=DesktopStatus.STOPPED, owner_id=desktop.owner_id,
        ).update(owner=new_owner, assigned_at=timezone.now(), pristine=False,
                 vnc_password=new_vnc_password())
        if moved != 1:
            raise ServiceError(f"Stop {desktop} before handing it over (it is "
                               f"{desktop.get_status_display()}).")
        ConsoleTicket.objects.filter(desktop=desktop, used_at__isnull=True).delete()
        audit.record(actor, "desktop.handover", desktop, source_address, previous_owner=previous,
                     new_owner=new_owner.get_username(), with_data=True)
        transaction.on_commit(lambda: close_consoles(desktop.pk, CloseCode.HANDED_OVER,
                                                     "the desktop changed hands"))

"""The work behind each desktop action, run by the Celery tasks on the desktop's host.

``execute`` reloads the desktop, does nothing if it is no longer in the action's transitional
state (a duplicate delivery), runs the steps, and records the outcome on the desktop and its
Operation. Every step checks the world first, so running a job twice is harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from django.conf import settings

from vdi import state
from vdi.console.notify import close_consoles
from vdi.hypervisor import HypervisorError
from vdi.models import Desktop
from vdi.worker import data_disks, operations
from vdi.worker.faults import crash_point
from vdi.worker.hosts import driver_for
from vdi.worker.specs import domain_spec

log = logging.getLogger(__name__)


def _ensure_domain(desktop: Desktop, operation_id: int, new: bool = False) -> None:
    """The desktop's disk and domain exist afterwards (creating whichever is missing)."""
    driver = driver_for(desktop.host)
    disk = Path(desktop.disk_path)
    if not disk.exists():
        operations.progress(operation_id, 20, "cloning the image (linked clone)")
        crash_point("clone")
        driver.clone_disk(Path(desktop.image_version.disk_path), disk)
    if desktop.data_disk_path and not Path(desktop.data_disk_path).exists():
        if not new:  # never paper over lost user data with an empty disk
            raise HypervisorError(f"the data disk {desktop.data_disk_path} is missing; "
                                  "restore it (see the reconciler's quarantine) or delete "
                                  "the desktop")
        operations.progress(operation_id, 35, "creating the user's data disk")
        crash_point("data-disk")
        data_disks.create(Path(desktop.data_disk_path), desktop.pool.data_disk_gib)
    operations.progress(operation_id, 50, "defining the virtual machine")
    crash_point("define")
    driver.define(domain_spec(desktop))


def _provision(desktop: Desktop, operation_id: int) -> None:
    _boot(desktop, operation_id, new=True)


def _boot(desktop: Desktop, operation_id: int, new: bool = False) -> None:
    _ensure_domain(desktop, operation_id, new)
    operations.progress(operation_id, 80, "booting")
    driver = driver_for(desktop.host)
    crash_point("boot")
    driver.start(desktop.domain_name)
    crash_point("booted")
    endpoint = driver.vnc_endpoint(desktop.domain_name)
    Desktop.objects.filter(pk=desktop.pk).update(
        vnc_host=endpoint.host if endpoint else "", vnc_port=endpoint.port if endpoint else None
    )


def _forget_console(desktop: Desktop) -> None:
    Desktop.objects.filter(pk=desktop.pk).update(vnc_host="", vnc_port=None)
    close_consoles(desktop.pk)


def _stop(desktop: Desktop, operation_id: int) -> None:
    _forget_console(desktop)
    operations.progress(operation_id, 30, "asking the guest to shut down")
    graceful = driver_for(desktop.host).shutdown(desktop.domain_name, settings.SHUTDOWN_TIMEOUT)
    if not graceful:
        operations.progress(operation_id, 90, "powered off after the shutdown deadline")


def _restart(desktop: Desktop, operation_id: int) -> None:
    _stop(desktop, operation_id)
    _boot(desktop, operation_id)


def _delete(desktop: Desktop, operation_id: int) -> None:
    _forget_console(desktop)
    operations.progress(operation_id, 40, "removing the virtual machine and its disks")
    doomed = [Path(desktop.disk_path)]
    if desktop.data_disk_path:
        doomed.append(Path(desktop.data_disk_path))  # an explicit delete of the desktop
    crash_point("undefine")
    driver_for(desktop.host).undefine(desktop.domain_name, tuple(doomed))
    Path(desktop.serial_log_path).unlink(missing_ok=True)


def _reset(desktop: Desktop, operation_id: int) -> None:
    """A fresh system disk from the pool's newest image version; the data disk stays."""
    _forget_console(desktop)
    operations.progress(operation_id, 10, "powering off")
    crash_point("power-off")
    driver = driver_for(desktop.host)
    driver.undefine(desktop.domain_name, (Path(desktop.disk_path),))
    version = desktop.pool.image.latest_ready_version()
    if version is not None and version.pk != desktop.image_version_id:
        Desktop.objects.filter(pk=desktop.pk).update(image_version=version)
        desktop.image_version = version
    Path(desktop.serial_log_path).unlink(missing_ok=True)
    _boot(desktop, operation_id)


def _discard_provisioned(desktop: Desktop) -> None:
    """A failed provisioning leaves no domain and no disk behind."""
    try:
        made = [Path(desktop.disk_path)]
        if desktop.data_disk_path:
            made.append(Path(desktop.data_disk_path))  # new with this desktop: no user data yet
        driver_for(desktop.host).undefine(desktop.domain_name, tuple(made))
    except HypervisorError as exc:
        log.error("Could not clean up %s after a failed provisioning: %s", desktop, exc)


STEPS: dict[str, Callable[[Desktop, int], None]] = {
    "provision": _provision,
    "start": _boot,
    "stop": _stop,
    "restart": _restart,
    "delete": _delete,
    "reset": _reset,
    "release": _reset,
}


def execute(action: str, desktop_id: int, operation_id: int, *, may_retry: bool) -> str:
    """Run ``action`` on the desktop. Returns 'done', 'skipped' or 'failed'.

    Raises HypervisorError only when the error is retryable and ``may_retry`` is set.
    """
    desktop = (Desktop.objects.select_related("host", "image_version", "pool")
               .filter(pk=desktop_id).first())
    if desktop is None:  # a very late redelivery, after the row went away
        log.warning("%s of desktop %s skipped: no such desktop", action, desktop_id)
        return "skipped"
    spec = state.ACTIONS[action]
    if desktop.status != spec.claims:
        log.info("%s of %s skipped: it is %s already", action, desktop, desktop.status)
        operations.finish(operation_id, step=f"nothing to do: desktop is {desktop.status}")
        return "skipped"
    if not operations.claim(operation_id):
        log.info("%s of %s skipped: another delivery of the same task is on it", action, desktop)
        return "skipped"
    try:
        STEPS[action](desktop, operation_id)
    except HypervisorError as exc:
        if exc.retryable and may_retry:
            operations.requeue(operation_id, f"will retry: {exc}")
            raise
        return _failed(action, desktop, operation_id, str(exc))
    except Exception as exc:
        log.exception("%s of %s crashed", action, desktop)
        return _failed(action, desktop, operation_id, f"internal error: {exc}")
    state.succeed(desktop.pk, action)
    operations.finish(operation_id)
    return "done"


def _failed(action: str, desktop: Desktop, operation_id: int, error: str) -> str:
    log.warning("%s of %s failed: %s", action, desktop, error)
    if action == "provision":
        _discard_provisioned(desktop)
    state.fail(desktop.pk, action, error)
    operations.finish(operation_id, error=error)
    return "failed"

"""The publish step: an install desktop becomes the next version of an image.

Shut the guest down (its installer may still run), copy its disk into a standalone qcow2 in
the image folder (the install disk stays as it is, so a failed publish can be tried again),
clean the copy for cloning with ``virt-sysprep`` (Linux; Windows is generalized with its own
sysprep inside the guest before publishing), then check, checksum and record it read-only
(``vdi.images.registry``). Any failure removes the copy and leaves the desktop stopped.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from django.conf import settings

from vdi.choices import Profile
from vdi.hypervisor import DomainType, HypervisorError, PowerState
from vdi.images.registry import VersionFiles, register_version
from vdi.models import Desktop, ImageVersion, Operation
from vdi.services.errors import ServiceError
from vdi.worker import operations
from vdi.worker.hosts import domain_type_for, driver_for
from vdi.worker.jobs import StepRefused, record_endpoint, step

log = logging.getLogger(__name__)


@step("publish")
def _publish(desktop: Desktop, operation_id: int) -> None:
    operation = Operation.objects.select_related("requested_by").get(pk=operation_id)
    params: dict[str, Any] = operation.params
    _shut_down(desktop, operation_id)
    staging = settings.IMAGE_DIR / f".publish-{desktop.domain_name}-{operation_id}.qcow2"
    try:
        version = _make_version(desktop, operation, params, staging)
    finally:
        staging.unlink(missing_ok=True)
    Operation.objects.filter(pk=operation_id).update(image=version.image)
    operations.progress(operation_id, 100, f"published as {version}")


def _shut_down(desktop: Desktop, operation_id: int) -> None:
    driver = driver_for(desktop.host)
    if driver.state(desktop.domain_name) in (None, PowerState.SHUTOFF):
        return
    operations.progress(operation_id, 5, "shutting the guest down")
    record_endpoint(desktop.pk, None)
    driver.shutdown(desktop.domain_name, settings.SHUTDOWN_TIMEOUT, agent=False)


def _make_version(desktop: Desktop, operation: Operation, params: dict[str, Any],
                  staging: Path) -> ImageVersion:
    driver = driver_for(desktop.host)
    operation_id = operation.pk
    try:
        driver.files.flatten(Path(desktop.disk_path), staging, lambda p: operations.progress(
            operation_id, 10 + int(p * 0.2), f"copying the disk: {p:.0f}%"))
        if params.get("sysprep", True) and desktop.profile != Profile.WINDOWS:
            operations.progress(operation_id, 35, "cleaning for cloning (virt-sysprep)")
            force_tcg = domain_type_for(desktop.host) == DomainType.QEMU
            driver.files.sysprep(staging, settings.GUESTFS_APPLIANCE_DIR, force_tcg)
        files = VersionFiles(staging, profile=desktop.profile,
                             readiness=params.get("readiness", "none"),
                             session_process=params.get("session_process", ""))
        return register_version(
            params["image_name"], files, move=True, description=params.get("description", ""),
            actor=operation.requested_by, progress=lambda p, s: operations.progress(
                operation_id, 70 + p * 3 // 10, s))
    except (HypervisorError, ServiceError) as exc:
        raise StepRefused(f"Publishing failed: {exc}", str(exc)) from exc

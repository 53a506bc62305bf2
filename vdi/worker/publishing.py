"""The publish step: an install desktop, or a maintenance desktop, becomes the next version
of an image.

Shut the guest down (its installer may still run), copy its disk into a standalone qcow2 in
the image folder (the install disk stays as it is, so a failed publish can be tried again),
clean the copy for cloning with ``virt-sysprep`` (Linux; Windows is generalized with its own
sysprep inside the guest before publishing), then check, checksum and record it read-only
(``vdi.images.registry``). A maintenance desktop's version boots as the version it was made
from did: its kernel, initrd and command line are copied along (the base keeps its own).
Any failure removes the copies and leaves the desktop stopped.
"""

from __future__ import annotations

import logging
import shutil
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
    boot = _boot_files(desktop, staging)
    try:
        version = _make_version(desktop, operation, params, staging, boot)
    finally:
        for made in (staging, *(copy for _, copy in boot.values())):
            made.unlink(missing_ok=True)
    Operation.objects.filter(pk=operation_id).update(image=version.image)
    operations.progress(operation_id, 100, f"published as {version}")


def _shut_down(desktop: Desktop, operation_id: int) -> None:
    driver = driver_for(desktop.host)
    if driver.state(desktop.domain_name) in (None, PowerState.SHUTOFF):
        return
    operations.progress(operation_id, 5, "shutting the guest down")
    record_endpoint(desktop.pk, None)
    driver.shutdown(desktop.domain_name, settings.SHUTDOWN_TIMEOUT, agent=False)


def _boot_files(desktop: Desktop, staging: Path) -> dict[str, tuple[Path, Path]]:
    """The base version's kernel and initrd, each with where its copy goes (none: it boots
    its disk). Copies, as the registry moves what it is given into the new version's folder."""
    base = desktop.image_version
    if base is None:
        return {}
    found = {"kernel": base.kernel_path, "initrd": base.initrd_path}
    return {key: (Path(path), staging.with_name(f"{staging.stem}-{key}"))
            for key, path in found.items() if path}


def _copy_boot_files(boot: dict[str, tuple[Path, Path]]) -> None:
    for key, (source, target) in boot.items():
        try:
            shutil.copyfile(source, target)
        except OSError as exc:
            raise ServiceError(f"the {key} {source} could not be copied: "
                               f"{exc.strerror}") from None


def _make_version(desktop: Desktop, operation: Operation, params: dict[str, Any],
                  staging: Path, boot: dict[str, tuple[Path, Path]]) -> ImageVersion:
    driver = driver_for(desktop.host)
    operation_id = operation.pk
    try:
        driver.files.flatten(Path(desktop.disk_path), staging, lambda p: operations.progress(
            operation_id, 10 + int(p * 0.2), f"copying the disk: {p:.0f}%"))
        _copy_boot_files(boot)
        if params.get("sysprep", True) and desktop.profile != Profile.WINDOWS:
            operations.progress(operation_id, 35, "cleaning for cloning (virt-sysprep)")
            force_tcg = domain_type_for(desktop.host) == DomainType.QEMU
            driver.files.sysprep(staging, settings.GUESTFS_APPLIANCE_DIR, force_tcg)
        base = desktop.image_version
        copies = {key: copy for key, (_, copy) in boot.items()}
        files = VersionFiles(staging, kernel=copies.get("kernel"), initrd=copies.get("initrd"),
                             cmdline=base.cmdline if base is not None else "",
                             profile=desktop.profile,
                             readiness=params.get("readiness", "none"),
                             session_process=params.get("session_process", ""))
        return register_version(
            params["image_name"], files, move=True, description=params.get("description", ""),
            notes=params.get("notes", ""), actor=operation.requested_by,
            progress=lambda p, s: operations.progress(operation_id, 70 + p * 3 // 10, s))
    except (HypervisorError, ServiceError) as exc:
        raise StepRefused(f"Publishing failed: {exc}", str(exc)) from exc

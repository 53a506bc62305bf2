"""New image versions from a desktop: an operator opens a maintenance desktop from an image's
current version, changes it through its console, and publishes it as the image's next version.

A maintenance desktop is its operator's, with no pool: a linked clone of the version, kept
(stopped or running) until it is published or deleted. Publishing is the install desktop's
publish step (``vdi.worker.publishing``): shut down, a standalone copy cleaned for cloning
(``virt-sysprep``), checked and recorded as the next version, with the operator's notes. The
pools that follow the image's latest version then roll it out, canary first
(``vdi.services.rollouts``). The same people may do this as may install and publish images
(``vdi.install_from_media`` to open one, ``vdi.publish_desktop`` to publish it). None of this
calls libvirt.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction

from vdi import actions
from vdi.actions import PROVISION
from vdi.choices import DesktopStatus
from vdi.models import Desktop, GoldenImage, ImageVersion, Operation
from vdi.models.desktops import new_mac_address, new_vnc_password
from vdi.services import access, audit
from vdi.services.access import Account, User
from vdi.services.desktops import enqueue_operation, new_operation, perform
from vdi.services.errors import AccessDenied, ServiceError
from vdi.services.installs import INSTALL
from vdi.services.placement import choose_host

NOTES_MAX = 4000


@dataclass(frozen=True)
class MaintenanceRequest:
    """The maintenance desktop of ``image``: its memory and vCPUs (the disk is the image's)."""

    image: GoldenImage
    memory_mib: int = 2048
    vcpus: int = 2


def current_version(image: GoldenImage) -> ImageVersion:
    """The version a maintenance desktop of ``image`` starts from: its newest ready one."""
    version = image.latest_ready_version()
    if version is None:
        raise ServiceError(f"{image} has no ready version to start a maintenance desktop from: "
                           "build, import or install one first.")
    return version


def maintenance_desktops(image: GoldenImage) -> list[Desktop]:
    """The maintenance desktops made from a version of ``image``."""
    return list(Desktop.objects.filter(pool__isnull=True, image_version__image=image)
                .select_related("owner", "image_version__image").order_by("pk"))


def _check_open(image: GoldenImage, request: MaintenanceRequest) -> ImageVersion:
    if not 256 <= request.memory_mib <= 65536 or not 1 <= request.vcpus <= 16:
        raise ServiceError("memory takes 256 to 65536 MiB and vCPUs 1 to 16")
    version = current_version(image)
    for desktop in maintenance_desktops(image):
        if desktop.image_version_id == version.pk:
            owner = desktop.owner.get_username() if desktop.owner else "nobody"
            raise ServiceError(
                f"{desktop} (of {owner}) is already a maintenance desktop of {version}: "
                "publish it or delete it first (two would make rival next versions).")
    return version


def open_maintenance_desktop(actor: User, request: MaintenanceRequest,
                             source_address: str | None = None) -> Desktop:
    """A new maintenance desktop of ``actor`` from ``request.image``'s current version;
    provisioned (a linked clone) and started."""
    if not isinstance(actor, Account) or not access.holds(actor, INSTALL):
        raise AccessDenied("You may not make maintenance desktops of images.")
    with transaction.atomic():
        image = GoldenImage.objects.select_for_update().get(pk=request.image.pk)  # one at once
        version = _check_open(image, request)
        host = choose_host(request.memory_mib, request.vcpus)
        domain_name = f"{settings.DOMAIN_PREFIX}-{uuid.uuid4().hex[:12]}"
        desktop = Desktop.objects.create(
            owner=actor, host=host, image_version=version, domain_name=domain_name,
            disk_path=str(Path(host.storage_dir) / f"{domain_name}.qcow2"),
            serial_log_path=str(settings.LOG_DIR / f"{domain_name}.log"),
            vnc_password=new_vnc_password(), mac_address=new_mac_address(), vcpus=request.vcpus,
            memory_mib=request.memory_mib)
        operation = new_operation(PROVISION, desktop, actor)
        audit.record(actor, "desktop.create", desktop, source_address, host=host.name,
                     maintenance_of=str(version))
        enqueue_operation(desktop, operation)
    return desktop


@dataclass(frozen=True)
class NextVersionRequest:
    """What the next version says of itself: ``notes`` (what changed), and whether it is
    cleaned for cloning (Linux; Windows is generalized inside the guest before)."""

    notes: str = ""
    sysprep: bool = True


def _check_publish(desktop: Desktop, request: NextVersionRequest) -> ImageVersion:
    if not desktop.is_maintenance:
        raise ServiceError("Only a maintenance desktop is published as its image's next "
                           "version.")
    if desktop.status == DesktopStatus.PUBLISHING:
        raise ServiceError(f"{desktop} is being published already: wait for its operation "
                           "to end.")
    if len(request.notes) > NOTES_MAX:
        raise ServiceError(f"the notes take at most {NOTES_MAX} characters")
    base = desktop.image_version
    assert base is not None  # a maintenance desktop's
    newest = base.image.versions.order_by("-number").first()
    if newest is not None and newest.number > base.number:
        raise ServiceError(
            f"{base.image} has a newer version ({newest}) than the {base} this desktop was "
            "made from: publishing it would undo that version's changes. Delete it and open "
            "a maintenance desktop of the current version.")
    return base


def publish_next_version(actor: User, desktop: Desktop, request: NextVersionRequest,
                         source_address: str | None = None) -> Operation:
    """Publish the maintenance desktop as the next version of its image; the new version
    boots as its base did (profile, readiness, kernel and command line)."""
    if not access.holds(actor, actions.PUBLISH.permission, desktop):
        raise AccessDenied("You may not publish desktops as images.")
    base = _check_publish(desktop, request)
    params = {"image_name": base.image.name, "notes": request.notes,
              "readiness": base.readiness, "session_process": base.session_process,
              "sysprep": request.sysprep, "new_image": False, "from_version": base.pk}
    return perform(desktop, actions.PUBLISH.name, actor, source_address, params=params,
                   image=base.image.name, from_version=str(base))

"""Images from an installer ISO: register the media, make an install desktop (a blank disk,
the ISO on its CD-ROM, CD first), publish it as a new image version.

The install desktop is a desktop of its administrator with no pool and no image: they install
through its browser console; ``publish`` claims it (so nobody starts it meanwhile) and its
host's worker shuts it down, cleans a copy for cloning (``virt-sysprep``), checks and records
it (``vdi.worker.publishing``). None of this calls libvirt.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from portal.limits import MEDIA_UPLOAD
from vdi import actions
from vdi.actions import PROVISION
from vdi.choices import Profile, Readiness
from vdi.folders import shared_folder
from vdi.models import Desktop, GoldenImage, InstallMedia, Operation
from vdi.models.desktops import new_vnc_password
from vdi.models.images import image_name_validator
from vdi.services import access, audit
from vdi.services.access import Account, User
from vdi.services.desktops import enqueue_operation, new_operation, perform
from vdi.services.errors import AccessDenied, ServiceError
from vdi.services.placement import choose_host
from vdi.services.uploads import check_length, storing, write_capped

INSTALL = "vdi.install_from_media"
ISO_MAGIC_OFFSET = 0x8001  # "CD001" of the primary volume descriptor (sector 16)
INSTALL_PROFILES = (Profile.LINUX_DESKTOP, Profile.WINDOWS)
SESSION_PROCESS = r"[A-Za-z0-9._+-]*"


def iso_volume_id(path: Path) -> str:
    """The ISO 9660 volume label of ``path``; ServiceError if it is not an ISO 9660 image."""
    try:
        with path.open("rb") as f:
            f.seek(ISO_MAGIC_OFFSET - 1)
            descriptor = f.read(72)
    except OSError as exc:
        raise ServiceError(f"{path} can't be read: {exc.strerror}") from None
    if len(descriptor) < 72 or descriptor[1:6] != b"CD001":
        raise ServiceError(f"{path} is not an ISO 9660 image (an installer CD or DVD); "
                           "no CD001 volume descriptor at sector 16")
    return descriptor[40:72].decode("ascii", errors="replace").strip()


def _check_name(name: str) -> None:
    try:
        image_name_validator(name)
    except ValidationError:
        raise ServiceError(f"{name!r}: use lower-case letters, digits and dashes") from None
    if InstallMedia.objects.filter(name=name).exists():
        raise ServiceError(f"there is install media called {name} already")


def check_media(name: str, path: Path) -> str:
    """Why ``path`` can't be install media ``name`` (ServiceError), or its volume label."""
    _check_name(name)
    if not path.is_absolute():
        raise ServiceError(f"{path}: give the absolute path of the ISO file")
    if not path.is_file():
        raise ServiceError(f"{path}: no such file")
    if InstallMedia.objects.filter(path=str(path)).exists():
        raise ServiceError(f"{path} is registered already")
    return iso_volume_id(path)


def register_media(actor: User, name: str, path: Path, source_address: str | None = None,
                   *, uploaded: bool = False) -> InstallMedia:
    """Record the ISO at ``path`` (on the portal's machine) as install media ``name``."""
    if not access.holds(actor, INSTALL):
        raise AccessDenied("You may not add install media.")
    volume_id = check_media(name, path)
    media = InstallMedia.objects.create(
        name=name, path=str(path), size_bytes=path.stat().st_size, volume_id=volume_id,
        uploaded=uploaded, created_by=actor if isinstance(actor, Account) else None)
    audit.record(actor, "media.upload" if uploaded else "media.register", media,
                 source_address, path=str(path), size=media.size_bytes, volume_id=volume_id)
    return media


def upload_media(actor: User, name: str, chunks: Iterator[bytes], length: int | None,
                 source_address: str | None = None) -> InstallMedia:
    """Store an uploaded ISO in ``VDI_MEDIA_DIR`` (at most ``VDI_MEDIA_UPLOAD_MAX_BYTES``)
    and register it. A refused or broken upload leaves no file behind; one the folder can't
    take raises NotStored, naming the cause (its caller is an operator)."""
    if not access.holds(actor, INSTALL):
        raise AccessDenied("You may not add install media.")
    _check_name(name)
    check_length(MEDIA_UPLOAD, length)
    folder = settings.MEDIA_DIR
    with storing(folder, "VDI_MEDIA_DIR"):  # no space, a folder it may not write: in words
        shared_folder(folder)
        target = folder / f"{name}.iso"
        if target.exists():
            raise ServiceError(f"{target} exists already")
        partial = folder / f".{name}.{uuid.uuid4().hex[:8]}.part"
        linked = False
        try:
            _write(partial, chunks)
            iso_volume_id(partial)
            os.chmod(partial, 0o444)
            os.link(partial, target)  # never replaces a file of the same name
            linked = True
            with transaction.atomic():
                return register_media(actor, name, target, source_address, uploaded=True)
        except BaseException:
            if linked:
                target.unlink(missing_ok=True)
            raise
        finally:
            partial.unlink(missing_ok=True)


def _write(path: Path, chunks: Iterator[bytes]) -> None:
    if write_capped(path, chunks, MEDIA_UPLOAD) == 0:
        raise ServiceError("the upload was empty")


@dataclass(frozen=True)
class InstallRequest:
    """What an install desktop gets: its installer, hardware, disk size, memory and vCPUs."""

    media: InstallMedia
    profile: str = Profile.LINUX_DESKTOP
    disk_gib: int = 20
    memory_mib: int = 2048
    vcpus: int = 2


def _check_request(request: InstallRequest) -> None:
    if request.profile not in INSTALL_PROFILES:
        raise ServiceError(f"install desktops use the profile {' or '.join(INSTALL_PROFILES)}, "
                           f"not {request.profile!r}")
    if not 1 <= request.disk_gib <= settings.INSTALL_DISK_MAX_GIB:
        raise ServiceError(f"the disk takes 1 to {settings.INSTALL_DISK_MAX_GIB} GiB "
                           "(VDI_INSTALL_DISK_MAX_GIB)")
    if not 256 <= request.memory_mib <= 65536 or not 1 <= request.vcpus <= 16:
        raise ServiceError("memory takes 256 to 65536 MiB and vCPUs 1 to 16")
    if not Path(request.media.path).is_file():
        raise ServiceError(f"the ISO of {request.media} is gone ({request.media.path})")


def create_install_desktop(actor: User, request: InstallRequest,
                           source_address: str | None = None) -> Desktop:
    """A new install desktop of ``actor`` booting ``request.media``; provisioned and started."""
    if not isinstance(actor, Account) or not access.holds(actor, INSTALL):
        raise AccessDenied("You may not make install desktops.")
    _check_request(request)
    with transaction.atomic():
        host = choose_host(request.memory_mib, request.vcpus)
        domain_name = f"{settings.DOMAIN_PREFIX}-{uuid.uuid4().hex[:12]}"
        desktop = Desktop.objects.create(
            owner=actor, host=host, install_media=request.media,
            install_profile=request.profile, install_disk_gib=request.disk_gib,
            domain_name=domain_name,
            disk_path=str(Path(host.storage_dir) / f"{domain_name}.qcow2"),
            serial_log_path=str(settings.LOG_DIR / f"{domain_name}.log"),
            vnc_password=new_vnc_password(), vcpus=request.vcpus,
            memory_mib=request.memory_mib)
        operation = new_operation(PROVISION, desktop, actor)
        audit.record(actor, "desktop.create", desktop, source_address, host=host.name,
                     media=request.media.name, profile=request.profile,
                     disk_gib=request.disk_gib)
        enqueue_operation(desktop, operation)
    return desktop


@dataclass(frozen=True)
class PublishRequest:
    """The image version a publish makes: into image ``image_name`` (new or existing)."""

    image_name: str
    description: str = ""
    readiness: str = Readiness.NONE
    session_process: str = ""
    sysprep: bool = True  # clean for cloning (Linux); Windows is generalized inside the guest


def _check_publish(request: PublishRequest) -> None:
    try:
        image_name_validator(request.image_name)
    except ValidationError:
        raise ServiceError(f"{request.image_name!r}: use lower-case letters, digits and "
                           "dashes") from None
    if request.readiness not in Readiness.values:
        raise ServiceError(f"readiness is one of {', '.join(Readiness.values)}")
    if request.session_process and request.readiness != Readiness.AGENT:
        raise ServiceError("a session process is looked for through the guest agent: "
                           "choose agent readiness")
    if not re.fullmatch(SESSION_PROCESS, request.session_process):
        raise ServiceError(f"{request.session_process!r} is not a process name")


def publish(actor: User, desktop: Desktop, request: PublishRequest,
            source_address: str | None = None) -> Operation:
    """Publish the install desktop as the next version of ``request.image_name``."""
    if not access.holds(actor, actions.PUBLISH.permission, desktop):
        raise AccessDenied("You may not publish desktops as images.")
    if desktop.is_maintenance:
        raise ServiceError("A maintenance desktop is published as its image's next version "
                           "(vdi.services.maintenance).")
    _check_publish(request)
    image = GoldenImage.objects.filter(name=request.image_name).first()
    params = {"image_name": request.image_name, "description": request.description,
              "readiness": request.readiness, "session_process": request.session_process,
              "sysprep": request.sysprep, "new_image": image is None}
    return perform(desktop, actions.PUBLISH.name, actor, source_address, params=params,
                   image=request.image_name)

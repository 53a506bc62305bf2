"""Registering golden image versions: files are checked, copied read-only and recorded.

Runs where the image folder is (a management command or a worker), never in a web request.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Max

from vdi.hypervisor import HypervisorError
from vdi.hypervisor.disks import disk_info, sha256_file
from vdi.models import GoldenImage, ImageVersion
from vdi.services import audit
from vdi.services.access import User
from vdi.services.errors import ServiceError


@dataclass(frozen=True)
class VersionFiles:
    disk: Path
    kernel: Path | None = None
    initrd: Path | None = None
    cmdline: str = ""


def _check_disk(path: Path) -> None:
    try:
        info = disk_info(path)
    except HypervisorError as exc:
        raise ServiceError(f"{path} is not a readable disk image: {exc}") from None
    if info.format != "qcow2":
        raise ServiceError(f"{path} is a {info.format} file, not qcow2 "
                           "(convert it with: qemu-img convert -O qcow2 SRC DST)")
    if info.backing_file is not None:
        raise ServiceError(f"{path} has a backing file ({info.backing_file}); "
                           "import a standalone image (qemu-img convert flattens it)")


def _check_files(files: VersionFiles) -> None:
    for extra in (files.kernel, files.initrd):
        if extra is not None and not extra.is_file():
            raise ServiceError(f"{extra} does not exist")
    if files.initrd is not None and files.kernel is None:
        raise ServiceError("an initrd needs a kernel")


def _install(source: Path, target: Path, move: bool) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if move:
        shutil.move(source, target)
    else:
        shutil.copyfile(source, target)
    target.chmod(0o444)


def register_version(
    name: str, files: VersionFiles, *, move: bool = False, description: str = "",
    actor: User | None = None,
) -> ImageVersion:
    """Check ``files`` and record them as the next version of image ``name``.

    The files are copied (or moved) into ``VDI_IMAGE_DIR/<name>/v<N>/`` and made read-only.
    A disk whose checksum is already registered is refused.
    """
    _check_disk(files.disk)
    _check_files(files)
    checksum = sha256_file(files.disk)
    duplicate = ImageVersion.objects.filter(sha256=checksum).select_related("image").first()
    if duplicate is not None:
        raise ServiceError(f"{files.disk} is already registered as {duplicate}")
    image, _ = GoldenImage.objects.get_or_create(name=name, defaults={"description": description})
    number = (image.versions.aggregate(n=Max("number"))["n"] or 0) + 1
    folder = settings.IMAGE_DIR / name / f"v{number}"
    if folder.exists():
        raise ServiceError(f"{folder} already exists; remove it or pick another name")
    staging = Path(tempfile.mkdtemp(prefix=".import-", dir=settings.IMAGE_DIR))
    try:
        disk = staging / "disk.qcow2"
        _install(files.disk, disk, move)
        kernel = staging / "vmlinuz" if files.kernel else None
        initrd = staging / "initrd.img" if files.initrd else None
        if files.kernel and kernel:
            _install(files.kernel, kernel, move)
        if files.initrd and initrd:
            _install(files.initrd, initrd, move)
        staging.chmod(0o755)
        folder.parent.mkdir(mode=0o755, exist_ok=True)
        staging.rename(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    try:
        return _record(image, number, folder, checksum, files.cmdline, actor)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _record(
    image: GoldenImage, number: int, folder: Path, checksum: str, cmdline: str,
    actor: User | None,
) -> ImageVersion:
    info = disk_info(folder / "disk.qcow2")
    kernel, initrd = folder / "vmlinuz", folder / "initrd.img"
    with transaction.atomic():
        version = ImageVersion.objects.create(
            image=image,
            number=number,
            disk_path=str(folder / "disk.qcow2"),
            size_bytes=info.actual_size or (folder / "disk.qcow2").stat().st_size,
            virtual_size_bytes=info.virtual_size,
            sha256=checksum,
            kernel_path=str(kernel) if kernel.exists() else "",
            initrd_path=str(initrd) if initrd.exists() else "",
            cmdline=cmdline,
        )
        audit.record(actor, "image.register", version, None, sha256=checksum)
    return version

"""Registering golden image versions: files are checked, converted or copied read-only, and
recorded. A standalone qcow2 is taken as it is (hard-linked when it can be); raw, vmdk and
vdi files are converted into one, with progress. A file that is not what it says it is, is
damaged (``qemu-img check``), or reads other files (a backing file, an external data file,
vmdk extents elsewhere: converting would copy host files into the image) is refused with the
reason.

Runs where the image folder is (a management command or a worker), never in a web request.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Max

from vdi.choices import Profile, Readiness
from vdi.folders import shared_folder
from vdi.hypervisor import DiskInfo, HypervisorError
from vdi.hypervisor.disks import (
    IMPORTABLE,
    convert_with_progress,
    damage,
    disk_info,
    sha256_file,
)
from vdi.models import GoldenImage, ImageVersion
from vdi.services import audit, rollouts
from vdi.services.access import User
from vdi.services.errors import ServiceError

Progress = Callable[[int, str], None]


def _quiet(percent: int, step: str) -> None:
    """No one to tell."""


@dataclass(frozen=True)
class VersionFiles:
    disk: Path
    kernel: Path | None = None
    initrd: Path | None = None
    cmdline: str = ""
    profile: str = Profile.TINY
    readiness: str = Readiness.SERIAL
    session_process: str = ""
    packages: str = ""
    build_key: str = ""


EXTENSIONS = {".qcow2": "qcow2", ".raw": "raw", ".img": "raw", ".vmdk": "vmdk", ".vdi": "vdi"}


def inspect(path: Path, declared: str | None = None) -> DiskInfo:
    """What qemu-img says the file is; ServiceError with its reason when it can't read it, or
    when it is not what it says it is (``declared``, or its extension): any file reads as
    raw, so a .vmdk that qemu-img sees as raw has no vmdk header, it is not a vmdk."""
    if not path.is_file():
        raise ServiceError(f"{path}: no such file")
    try:
        info = disk_info(path)
    except HypervisorError as exc:
        raise ServiceError(f"{path} is not a disk image qemu-img can read: {exc}") from None
    expected = declared or EXTENSIONS.get(path.suffix.lower())
    if expected is not None and info.format != expected:
        raise ServiceError(f"{path} is not a valid {expected} file (qemu-img reads it as "
                           f"{info.format}): it may be damaged or truncated")
    if info.format not in IMPORTABLE:
        raise ServiceError(f"{path} is a {info.format} file; images are imported from "
                           f"{', '.join(IMPORTABLE)}")
    if info.backing_file is not None:
        raise ServiceError(f"{path} has a backing file ({info.backing_file}); import a "
                           "standalone image (qemu-img convert -O qcow2 flattens it)")
    if info.other_files:
        raise ServiceError(f"{path} reads other files ({', '.join(map(str, info.other_files))})"
                           "; import a single self-contained file")
    if (problem := damage(path, info.format)) is not None:
        raise ServiceError(f"{path} is damaged ({problem}); it was not imported")
    return info


def _check_files(files: VersionFiles) -> None:
    for extra in (files.kernel, files.initrd):
        if extra is not None and not extra.is_file():
            raise ServiceError(f"{extra} does not exist")
    if files.initrd is not None and files.kernel is None:
        raise ServiceError("an initrd needs a kernel")
    if files.profile not in Profile.values:
        raise ServiceError(f"unknown machine profile {files.profile!r} "
                           f"(one of {', '.join(Profile.values)})")
    if not re.fullmatch(r"[A-Za-z0-9._+-]*", files.session_process):
        raise ServiceError(f"{files.session_process!r} is not a process name")


def _install(source: Path, target: Path, move: bool) -> None:
    shared_folder(target.parent)
    if move:
        shutil.move(source, target)
    else:
        try:
            os.link(source, target)  # a cached build: no second copy on the same disk
        except OSError:
            shutil.copyfile(source, target)
    target.chmod(0o444)


def _install_disk(info: DiskInfo, target: Path, move: bool, progress: Progress) -> None:
    if info.format == "qcow2":
        _install(info.path, target, move)
        return
    try:
        convert_with_progress(info.path, info.format, target, lambda p: progress(
            int(10 + p * 0.8), f"converting to qcow2 (from {info.format}): {p:.0f}%"))
    except HypervisorError as exc:
        raise ServiceError(f"{info.path} could not be converted: {exc}") from None
    target.chmod(0o444)


def register_version(
    name: str, files: VersionFiles, *, move: bool = False, description: str = "",
    notes: str = "", actor: User | None = None, progress: Progress = _quiet,
) -> ImageVersion:
    """Check ``files`` and record them as the next version of image ``name`` (``notes``: what
    changed in it).

    The files go into ``VDI_IMAGE_DIR/<name>/v<N>/``, read-only. A disk whose checksum is
    already registered is refused.
    """
    info = inspect(files.disk)
    _check_files(files)
    image, _ = GoldenImage.objects.get_or_create(name=name, defaults={"description": description})
    number = (image.versions.aggregate(n=Max("number"))["n"] or 0) + 1
    folder = settings.IMAGE_DIR / name / f"v{number}"
    if folder.exists():
        raise ServiceError(f"{folder} already exists; remove it or pick another name")
    shared_folder(settings.IMAGE_DIR)
    staging = Path(tempfile.mkdtemp(prefix=".import-", dir=settings.IMAGE_DIR))
    try:
        progress(5, "checking the disk")
        _install_disk(info, staging / "disk.qcow2", move, progress)
        for source, target in ((files.kernel, "vmlinuz"), (files.initrd, "initrd.img")):
            if source is not None:
                _install(source, staging / target, move)
        progress(92, "checksum")
        checksum = sha256_file(staging / "disk.qcow2")
        duplicate = ImageVersion.objects.filter(sha256=checksum).select_related("image").first()
        if duplicate is not None:
            raise ServiceError(f"{files.disk} is already registered as {duplicate}")
        staging.chmod(0o755)
        shared_folder(folder.parent)
        staging.rename(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    try:
        version = _record(image, number, folder, checksum, files, actor, notes)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    progress(100, f"registered as {version}")
    return version


def _record(image: GoldenImage, number: int, folder: Path, checksum: str,
            files: VersionFiles, actor: User | None, notes: str = "") -> ImageVersion:
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
            cmdline=files.cmdline,
            profile=files.profile,
            readiness=files.readiness,
            session_process=files.session_process,
            packages=files.packages,
            build_key=files.build_key,
            notes=notes,
        )
        audit.record(actor, "image.register", version, None, sha256=checksum,
                     profile=files.profile)
        rollouts.version_ready(version)  # pools following "latest" start a rollout
    return version

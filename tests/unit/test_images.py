"""Golden image versions: import checks, read-only copies, duplicates; the tiny image parts."""

from __future__ import annotations

import gzip
import io
import os
import subprocess
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from vdi.choices import DesktopStatus
from vdi.hypervisor.disks import create_blank, create_overlay, disk_info
from vdi.images import tiny
from vdi.images.cpio import NewcWriter
from vdi.images.registry import VersionFiles, register_version
from vdi.models import AuditEvent, Desktop, ImageVersion
from vdi.services.errors import ServiceError


@pytest.fixture(autouse=True)
def image_dir(tmp_path: Path, settings) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    settings.IMAGE_DIR = folder
    return folder


@pytest.fixture
def qcow2(tmp_path: Path) -> Path:
    path = tmp_path / "upload.qcow2"
    create_blank(path, 32 * 1024 * 1024)
    return path


def test_register_copies_read_only_and_records_checksum(db, qcow2, image_dir):
    version = register_version("office", VersionFiles(qcow2))
    stored = Path(version.disk_path)
    assert stored == image_dir / "office" / "v1" / "disk.qcow2"
    assert stored.stat().st_mode & 0o777 == 0o444
    assert qcow2.exists(), "the source file is copied, not moved"
    assert version.number == 1 and len(version.sha256) == 64
    assert version.virtual_size_bytes == 32 * 1024 * 1024
    assert AuditEvent.objects.filter(action="image.register").count() == 1


def test_folders_qemu_reads_are_open_to_it_under_the_services_private_umask(
        db, qcow2, image_dir):
    """The services run with umask 077; QEMU (another user) must still reach a version's
    disk through its image's folder, and a new desktop's disk through a new storage folder."""
    old = os.umask(0o077)
    try:
        version = register_version("office", VersionFiles(qcow2))
        overlay = create_overlay(Path(version.disk_path), image_dir.parent / "new" / "d.qcow2")
    finally:
        os.umask(old)
    for folder in (image_dir / "office", image_dir / "office" / "v1", overlay.path.parent):
        assert folder.stat().st_mode & 0o777 == 0o755, folder


def test_the_same_file_twice_is_refused(db, qcow2):
    register_version("office", VersionFiles(qcow2))
    with pytest.raises(ServiceError, match="already registered as office v1"):
        register_version("other", VersionFiles(qcow2))
    assert ImageVersion.objects.count() == 1


def test_a_new_file_becomes_the_next_version(db, qcow2, tmp_path):
    register_version("office", VersionFiles(qcow2))
    second = tmp_path / "second.qcow2"
    create_blank(second, 16 * 1024 * 1024)
    subprocess.run(["qemu-img", "resize", "-q", str(second), "17M"], check=True)
    assert register_version("office", VersionFiles(second)).number == 2


def garbage(folder: Path, name: str, size: int = 1024 * 1024) -> Path:
    path = folder / name
    path.write_bytes(b"not a disk image " * (size // 17))
    return path


def truncated(folder: Path, fmt: str) -> Path:
    """A valid file of ``fmt`` holding data, cut after its first 64 KiB (its header and the
    start of its block map: the data it points to is gone)."""
    source = folder / "source.raw"
    source.write_bytes(os.urandom(8 * 1024 * 1024))
    whole = folder / f"whole.{fmt}"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", fmt, str(source), str(whole)],
                   check=True)
    cut = folder / f"cut.{fmt}"
    cut.write_bytes(whole.read_bytes()[:64 * 1024])
    return cut


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.qcow2", "no such file"),
        (lambda d: garbage(d, "garbage.vmdk"), "not a valid vmdk file .*reads it as raw"),
        (lambda d: garbage(d, "garbage.qcow2"), "not a valid qcow2 file"),
        (lambda d: truncated(d, "vdi"), "is damaged .*the file is truncated"),
        (lambda d: truncated(d, "qcow2"), "is damaged .*qemu-img check: 3 corruptions"),
        (lambda d: truncated(d, "vmdk"), "is damaged .*points after EOF"),
    ],
    ids=["missing", "garbage-vmdk", "garbage-qcow2", "truncated-vdi", "truncated-qcow2",
         "truncated-vmdk"],
)
def test_wrong_files_are_refused_with_a_clear_error(db, tmp_path, make, message, settings):
    settings.IMAGE_DIR = tmp_path / "images"
    with pytest.raises(ServiceError, match=message):
        register_version("bad", VersionFiles(make(tmp_path)))
    assert not list((tmp_path / "images").rglob("*.qcow2")), "nothing half-imported is left"


@pytest.mark.parametrize("fmt", ["raw", "vmdk", "vdi"])
def test_raw_vmdk_and_vdi_are_converted_to_a_standalone_qcow2(db, qcow2, tmp_path, fmt):
    subprocess.run(["qemu-img", "resize", "-q", str(qcow2), "32M"], check=True)
    source = tmp_path / f"disk.{fmt}"
    subprocess.run(["qemu-img", "convert", "-O", fmt, str(qcow2), str(source)], check=True)
    steps: list[tuple[int, str]] = []
    version = register_version("converted", VersionFiles(source),
                               progress=lambda p, s: steps.append((p, s)))
    info = disk_info(Path(version.disk_path))
    assert (info.format, info.backing_file, info.virtual_size) == ("qcow2", None, 32 * 1024**2)
    assert any(f"converting to qcow2 (from {fmt})" in step for _, step in steps)
    assert steps[-1][0] == 100


def test_an_image_that_reads_other_files_is_refused(db, qcow2, tmp_path):
    """Converting would copy host files in: an overlay's backing file, a vmdk extent."""
    overlay = tmp_path / "overlay.qcow2"
    create_overlay(qcow2, overlay)
    with pytest.raises(ServiceError, match="has a backing file"):
        register_version("bad", VersionFiles(overlay))
    secret = tmp_path / "host-secret.raw"
    secret.write_bytes(b"host data" * 1000)
    descriptor = tmp_path / "foreign.vmdk"
    descriptor.write_text(
        "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n"
        'createType="monolithicFlat"\n\n'
        f'RW 18 FLAT "{secret}" 0\n\n'
        'ddb.adapterType = "ide"\nddb.geometry.cylinders = "1"\n'
        'ddb.geometry.heads = "16"\nddb.geometry.sectors = "63"\n')
    with pytest.raises(ServiceError, match="reads other files"):
        register_version("bad", VersionFiles(descriptor))


def test_import_command(db, qcow2, capsys):
    call_command("import_image", str(qcow2), "--name", "office")
    assert "Imported" in capsys.readouterr().out
    with pytest.raises(CommandError, match="already registered"):
        call_command("import_image", str(qcow2), "--name", "office")
    with pytest.raises(CommandError, match="lower-case letters"):
        call_command("import_image", str(qcow2), "--name", "Bad Name")
    with pytest.raises(CommandError, match="no such file"):
        call_command("import_image", "/nonexistent.qcow2", "--name", "office")


def test_a_version_in_use_cannot_be_deleted(owner, pool, host, image_version):
    Desktop.objects.create(
        owner=owner, pool=pool, host=host, image_version=image_version, domain_name="vditest-x",
        disk_path="/x", serial_log_path="/x.log", vcpus=1, memory_mib=256,
        status=DesktopStatus.STOPPED,
    )
    with pytest.raises(ValidationError, match="backing file"):
        image_version.delete()


def read_newc(data: bytes) -> dict[str, tuple[int, bytes]]:
    """A minimal reader, enough to check what the writer produced."""
    entries: dict[str, tuple[int, bytes]] = {}
    offset = 0
    while True:
        header = data[offset:offset + 110]
        assert header[:6] == b"070701"
        fields = [int(header[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        name_start = offset + 110
        name = data[name_start:name_start + namesize - 1].decode()
        data_start = name_start + namesize + (-(110 + namesize) % 4)
        if name == "TRAILER!!!":
            return entries
        entries[name] = (mode, data[data_start:data_start + size])
        offset = data_start + size + (-size % 4)


def test_cpio_writer_round_trip():
    out = io.BytesIO()
    writer = NewcWriter(out)
    writer.directory("bin")
    writer.file("init", b"#!/bin/sh\n", 0o755)
    writer.char_device("dev/console", 5, 1)
    writer.close()
    entries = read_newc(out.getvalue())
    assert entries["init"] == (0o100755, b"#!/bin/sh\n")
    assert entries["dev/console"][0] == 0o020600
    assert len(out.getvalue()) % 4 == 0


def test_tiny_initramfs_has_init_busybox_and_ordered_modules(tmp_path):
    kernel = tiny.find_kernel(settings.KERNEL_DIR)
    order = [name for name, _ in tiny.module_load_order(kernel.modules, tiny.INITRAMFS_MODULES)]
    assert order.index("virtio") < order.index("virtio_blk") < order.index("ext4")
    assert order.index("jbd2") < order.index("ext4")
    target = tmp_path / "initrd.img"
    tiny.build_initramfs(kernel, target)
    entries = read_newc(gzip.decompress(target.read_bytes()))
    assert entries["init"][0] & 0o111
    assert "bin/busybox" in entries and "lib/modules/virtio_blk.ko" in entries
    assert entries["modules.order"][1].decode().split() == order


def test_tiny_root_has_init_shell_and_power_button(tmp_path):
    tiny.populate_root(tmp_path)
    init = (tmp_path / "sbin/init").read_text()
    assert tiny.READY_MARKER in init and "/dev/tty1" in init
    assert (tmp_path / "etc/acpi/PWRF/00000080").stat().st_mode & 0o111
    assert (tmp_path / "bin/sh").is_symlink()


def test_find_kernel_explains_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="no Debian kernel"):
        tiny.find_kernel(tmp_path)


def test_build_tiny_image_command_registers_once(db, capsys):
    call_command("build_tiny_image", "--if-missing")
    version = ImageVersion.objects.get(image__name="tiny")
    assert Path(version.kernel_path).name == "vmlinuz" and version.cmdline == tiny.CMDLINE
    assert Path(version.initrd_path).exists() and Path(version.disk_path).exists()
    call_command("build_tiny_image", "--if-missing")
    assert "nothing to build" in capsys.readouterr().out
    assert ImageVersion.objects.count() == 1
    assert not list(settings.IMAGE_DIR.glob(".build-*")), "no half-built folder is left"

"""An installer ISO made in the test goes the whole way: uploaded as install media, an install
desktop boots it from a blank disk (CD first) and the installer puts a Debian system with its
boot loader on the disk, publish cleans a copy for cloning (virt-sysprep empties the
machine-id the installer wrote) into a new image version, and a pool's desktop boots it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import wait_for, wait_gone, wait_status
from vdi.choices import DesktopStatus, OperationStatus
from vdi.hypervisor import PowerState, get_driver
from vdi.images.tiny import READY_MARKER, find_kernel
from vdi.models import Desktop, ImageVersion, Operation, Pool
from vdi.services.claims import claim_desktop
from vdi.services.desktops import perform
from vdi.services.installs import (
    InstallRequest,
    PublishRequest,
    create_install_desktop,
    publish,
    upload_media,
)
from vdi.testing.install_iso import DONE_MARKER, make_install_iso

pytestmark = [pytest.mark.desktop, pytest.mark.django_db(transaction=True)]


def test_an_installer_iso_becomes_an_image_a_pool_claims_from(
        worker, vm_host, admin_user, owner, tmp_path, settings):
    settings.MEDIA_DIR = Path(settings.DATA_DIR) / "media"
    for stale in settings.MEDIA_DIR.glob("installer*.iso"):
        stale.unlink()
    published = Path(settings.IMAGE_DIR) / "from-iso"
    shutil.rmtree(published, ignore_errors=True)  # an earlier run's files (its database is gone)
    iso = make_install_iso(find_kernel(settings.KERNEL_DIR), tmp_path / "installer.iso")
    media = upload_media(admin_user, "installer", iter([iso.read_bytes()]), iso.stat().st_size)
    settings.MEDIA_DIR.chmod(0o755)
    installer = create_install_desktop(admin_user, InstallRequest(
        media, disk_gib=1, memory_mib=512, vcpus=1))
    wait_status(installer, DesktopStatus.RUNNING, timeout=120)
    driver = get_driver(settings.LIBVIRT_URI)
    wait_for(lambda: driver.state(installer.domain_name) == PowerState.SHUTOFF, 180,
             "the installer to finish and power off")
    assert DONE_MARKER in Path(installer.serial_log_path).read_text(errors="replace")

    operation = publish(admin_user, Desktop.objects.get(pk=installer.pk), PublishRequest(
        "from-iso", "installed from an ISO", readiness="serial"))
    wait_for(lambda: Operation.objects.get(pk=operation.pk).status in (
        OperationStatus.SUCCEEDED, OperationStatus.FAILED), 400, "the publish to end")
    operation.refresh_from_db()
    assert operation.status == OperationStatus.SUCCEEDED, operation.error
    version = ImageVersion.objects.get(image__name="from-iso")
    info = subprocess.run(["qemu-img", "info", version.disk_path], capture_output=True,
                          text=True, check=True).stdout
    assert "backing file" not in info and "file format: qcow2" in info
    assert Desktop.objects.get(pk=installer.pk).status == DesktopStatus.STOPPED

    pool = Pool.objects.create(name="Installed", image=version.image, vcpus=1, memory_mib=256)
    pool.users.add(owner)
    desktop = claim_desktop(owner, pool)
    wait_status(desktop, DesktopStatus.RUNNING, timeout=120)
    wait_for(lambda: Desktop.objects.get(pk=desktop.pk).guest_ready_at, 180,
             "the published system to boot from its own disk")
    serial = Path(desktop.serial_log_path).read_text(errors="replace")
    ready = re.search(rf"{READY_MARKER} (\S+) machine-id=(\S*)", serial)
    assert ready is not None and ready.group(1) == "installed"
    assert ready.group(2) == "", "cleaned for cloning: each clone makes its own machine-id"
    for done in (desktop, installer):
        perform(Desktop.objects.get(pk=done.pk), "delete", None)
        wait_gone(done)
    shutil.rmtree(published)

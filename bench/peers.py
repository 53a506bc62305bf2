"""The peers' own way of making a desktop: plain `qemu-img create -b` of the image version's
disk and `virsh define` of the same domain XML the portal would use (started by the caller,
who times `virsh start`)."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable

from django.conf import settings

from vdi.hypervisor.domain_xml import build_domain_xml
from vdi.models import Desktop
from vdi.worker.specs import domain_spec


def define_with_virsh(desktop: Desktop, before_define: Callable[[], None] = lambda: None
                      ) -> None:
    """Give the unsaved ``desktop`` a linked clone and a log path, run ``before_define``
    (a seed, say), then define its domain with virsh."""
    assert desktop.image_version is not None
    desktop.disk_path = str(settings.DISK_DIR / f"{desktop.domain_name}.qcow2")
    desktop.serial_log_path = str(settings.LOG_DIR / f"{desktop.domain_name}.log")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                    desktop.image_version.disk_path, desktop.disk_path], check=True)
    before_define()
    with tempfile.NamedTemporaryFile("w", suffix=".xml") as xml:
        xml.write(build_domain_xml(domain_spec(desktop)))
        xml.flush()
        subprocess.run(["virsh", "-c", settings.LIBVIRT_URI, "define", xml.name], check=True,
                       capture_output=True)

"""Domain type 'auto' proves KVM by booting a probe guest, and falls back to qemu loudly.

These hold on any host: the probe's verdict is compared with what a real desktop guest does
under KVM on this host (reaches its ready marker within a generous deadline, or not).
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from vdi.hypervisor import DiskSpec, DomainSpec, DomainType, HypervisorError, KernelBoot, get_driver
from vdi.hypervisor.disks import create_overlay
from vdi.hypervisor.domain_xml import build_domain_xml
from vdi.hypervisor.probe import kvm_boots
from vdi.images.tiny import PROBE_MARKER, READY_MARKER
from vdi.models import Host
from vdi.worker.hosts import domain_type_for

pytestmark = [pytest.mark.vm, pytest.mark.django_db(transaction=True)]
GENEROUS = 60  # seconds a desktop guest gets to reach its ready marker under KVM


class KvmGuest:
    """A real tiny desktop booted under KVM on an overlay of the image, watched for READY;
    booted once for the module, while the first test runs its probe."""

    def __init__(self, tiny_files) -> None:
        from django.conf import settings

        name = f"{settings.DOMAIN_PREFIX}-kvmcheck-{uuid.uuid4().hex[:6]}"
        disk = settings.DISK_DIR / f"{name}.qcow2"
        create_overlay(tiny_files.disk, disk)
        self.name, self.disk = name, disk
        self.log = settings.LOG_DIR / f"{name}.log"
        self.driver = get_driver(settings.LIBVIRT_URI)
        self.spec = DomainSpec(
            name=name, uuid=str(uuid.uuid4()), domain_type=DomainType.KVM, memory_mib=256,
            vcpus=1, disks=(DiskSpec(disk),), serial_log=self.log,
            kernel_boot=KernelBoot(tiny_files.kernel, tiny_files.initrd, tiny_files.cmdline))
        self.started = time.monotonic()
        try:
            self.driver.connection().createXML(build_domain_xml(self.spec), 0)
            self.launched = True
        except Exception:  # libvirt refuses a KVM guest outright: no KVM at all
            self.launched = False
        self._works: bool | None = None

    def works(self) -> bool:
        """Whether it reached its ready marker within GENEROUS seconds of its start."""
        while self._works is None:
            if self.log.exists() and READY_MARKER in self.log.read_text(errors="replace"):
                self._works = True
            elif not self.launched or time.monotonic() > self.started + GENEROUS:
                self._works = False
            else:
                time.sleep(0.25)
        self.remove()
        return self._works

    def remove(self) -> None:
        with contextlib.suppress(HypervisorError):
            self.driver.power_off(self.name)
        self.disk.unlink(missing_ok=True)
        self.log.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def kvm_guest(tiny_files) -> Iterator[KvmGuest]:
    guest = KvmGuest(tiny_files)
    yield guest
    guest.remove()


def test_the_probe_agrees_with_what_a_kvm_guest_does_here(tiny_files, settings, kvm_guest):
    driver = get_driver(settings.LIBVIRT_URI)
    probe = (driver, tiny_files.kernel, tiny_files.initrd, settings.LOG_DIR, PROBE_MARKER)
    assert kvm_boots(*probe, timeout=60, domain_type=DomainType.QEMU) is True, \
        "the probe sees a guest that boots (software emulation always does)"
    verdict = kvm_boots(*probe, timeout=20)  # while the real desktop boots under KVM
    works = kvm_guest.works()
    assert verdict == works, (f"probe says KVM {'works' if verdict else 'fails'}, a KVM guest "
                              f"{'reached' if works else 'did not reach'} its ready marker")
    assert not [d.name for d in driver.list_domains() if d.name.startswith("vdi-probe-")], \
        "no probe domain is left"
    assert not list(Path(settings.LOG_DIR).glob("vdi-probe-*.log"))


def test_auto_resolves_to_what_the_probe_proves_and_remembers_it(
        tiny_version, vm_host, settings, caplog, kvm_guest):
    settings.PROBE_TIMEOUT = 20
    Host.objects.filter(pk=vm_host.pk).update(domain_type="auto")
    vm_host.refresh_from_db()
    works = kvm_guest.works()
    with caplog.at_level(logging.INFO):
        resolved = domain_type_for(vm_host)
    if works:
        assert resolved == DomainType.KVM and "KVM works" in caplog.text
    else:
        assert resolved == DomainType.QEMU and "KVM does NOT work here" in caplog.text
    vm_host.refresh_from_db()
    assert vm_host.resolved_domain_type == resolved.value
    assert domain_type_for(vm_host) == resolved, "probed once, then remembered"

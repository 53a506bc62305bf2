"""Domain type 'auto' proves KVM by booting a probe guest, and falls back to qemu loudly."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from vdi.hypervisor import DomainType, get_driver
from vdi.hypervisor.probe import kvm_boots
from vdi.images.tiny import PROBE_MARKER
from vdi.models import Host
from vdi.worker.hosts import domain_type_for

pytestmark = [pytest.mark.vm, pytest.mark.django_db(transaction=True)]


def test_probe_sees_a_booting_guest_and_a_hanging_one(tiny_files, settings):
    """Under qemu the probe guest prints its marker; under this machine's KVM it hangs."""
    driver = get_driver(settings.LIBVIRT_URI)
    before = {d.name for d in driver.list_domains()}
    probe = (driver, tiny_files.kernel, tiny_files.initrd, settings.LOG_DIR, PROBE_MARKER)
    assert kvm_boots(*probe, timeout=60, domain_type=DomainType.QEMU) is True
    assert kvm_boots(*probe, timeout=8) is False
    assert {d.name for d in driver.list_domains()} == before, "no probe domain is left"
    assert not list(Path(settings.LOG_DIR).glob("vdi-probe-*.log"))


def test_auto_resolves_to_qemu_here_and_says_so(tiny_version, vm_host, settings, caplog):
    settings.PROBE_TIMEOUT = 8
    Host.objects.filter(pk=vm_host.pk).update(domain_type="auto")
    vm_host.refresh_from_db()
    with caplog.at_level(logging.WARNING):
        assert domain_type_for(vm_host) == DomainType.QEMU
    assert "KVM does NOT work here" in caplog.text
    vm_host.refresh_from_db()
    assert vm_host.resolved_domain_type == "qemu"
    assert domain_type_for(vm_host) == DomainType.QEMU, "probed once, then remembered"

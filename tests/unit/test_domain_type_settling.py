"""A host's domain type is settled once, before it takes work, and a probe never raises: on
libvirt's test:///default driver (its guests never print anything, like a guest that hangs
under a broken KVM)."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest
from django.core.management import call_command

from tests.support import make_version
from vdi.hypervisor import DomainType, Driver
from vdi.hypervisor.probe import kvm_verdict
from vdi.models import Host
from vdi.worker import hosts

TEST_URI = "test:///default"


@pytest.fixture
def driver():
    driver = Driver(TEST_URI, poll_interval=0.01)
    yield driver
    driver.close()


@pytest.fixture
def auto_host(db: None) -> Host:
    make_version("probe", "/nonexistent/probe.qcow2", kernel_path="/nonexistent/vmlinuz",
                 initrd_path="/nonexistent/initrd", cmdline="")
    return Host.objects.create(name="settling", libvirt_uri=TEST_URI, domain_type="auto",
                               storage_dir="/nonexistent")


def test_a_probe_guest_that_prints_nothing_is_a_verdict_in_words(driver, tmp_path):
    seen_log: list[int] = []
    original = driver.files.contains

    def watching(path: Path, text: str, tail: int = 4 * 1024 * 1024) -> bool:
        seen_log.append(stat.S_IMODE(path.stat().st_mode))  # it exists before the guest
        return bool(original(path, text, tail))

    driver.files.contains = watching
    verdict = kvm_verdict(driver, Path("/k"), Path("/i"), tmp_path, "MARKER", timeout=0.6)
    assert verdict.works is False
    assert "did not reach its init within 0.6 s" in verdict.reason
    assert seen_log and all(mode & stat.S_IRUSR for mode in seen_log), \
        "the probe made its serial log itself, readable by its own user"
    assert not list(tmp_path.glob("vdi-probe-*.log")), "the probe removes its log"
    assert not [d for d in driver.list_domains() if d.name.startswith("vdi-probe-")]


def test_a_probe_whose_log_cannot_be_made_says_so(driver, tmp_path):
    (tmp_path / "file").touch()  # a file where the log folder should be
    verdict = kvm_verdict(driver, Path("/k"), Path("/i"), tmp_path / "file" / "logs",
                          "MARKER", timeout=5)
    assert verdict.works is False
    assert "could not make its serial log" in verdict.reason


def test_auto_is_settled_once_with_its_reason(auto_host, settings, caplog):
    settings.PROBE_TIMEOUT = 0.5
    with caplog.at_level(logging.WARNING):
        lines = hosts.settle_hosts(["settling"])
    auto_host.refresh_from_db()
    assert auto_host.resolved_domain_type == "qemu"
    assert "KVM does NOT work here" in auto_host.domain_type_reason
    assert "did not reach its init" in auto_host.domain_type_reason
    assert lines == [f"Host settling: domain type 'qemu' ({auto_host.domain_type_reason})"]
    assert "KVM does NOT work here" in caplog.text
    assert hosts.settle_hosts(["settling"])[0].startswith(
        "Host settling: domain type 'qemu' (as before: KVM does NOT work"), "probed once"


def test_a_probe_that_raises_falls_back_to_qemu_and_says_why(auto_host, monkeypatch):
    def broken(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(hosts, "kvm_verdict", broken)
    assert hosts.domain_type_for(auto_host) == DomainType.QEMU
    auto_host.refresh_from_db()
    assert auto_host.resolved_domain_type == "qemu"
    assert "the probe could not run" in auto_host.domain_type_reason
    assert "Permission denied" in auto_host.domain_type_reason


def test_the_command_settles_every_enabled_host_and_prints_it(auto_host, settings, capsys):
    settings.PROBE_TIMEOUT = 0.5
    fixed = Host.objects.create(name="fixed", libvirt_uri=TEST_URI, domain_type="kvm",
                                storage_dir="/nonexistent")
    call_command("settle_hosts")
    out = capsys.readouterr().out
    assert "Host settling: domain type 'qemu' (KVM does NOT work here" in out
    assert f"Host {fixed.name}: domain type 'kvm' (as before: set to 'kvm')" in out

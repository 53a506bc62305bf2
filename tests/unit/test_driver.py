"""Driver verbs against libvirt's own test:///default driver (real libvirt, no guests)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from vdi.hypervisor import (
    DiskSpec,
    DomainSpec,
    DomainType,
    Driver,
    HypervisorError,
    PowerState,
    Shutdown,
    disks,
)


@pytest.fixture
def driver():
    driver = Driver("test:///default", poll_interval=0.01)
    yield driver
    driver.close()


def make_spec(tmp_path: Path, name: str = "vditest-drv") -> DomainSpec:
    return DomainSpec(
        name=name, uuid=str(uuid.uuid4()), domain_type=DomainType.QEMU, memory_mib=128, vcpus=1,
        disks=(DiskSpec(tmp_path / f"{name}.qcow2"),), serial_log=tmp_path / f"{name}.log",
        metadata={"desktop": "42"},
    )


def test_define_start_stop_undefine(driver, tmp_path):
    spec = make_spec(tmp_path)
    info = driver.define(spec)
    assert (info.name, info.uuid, info.state, info.persistent) == (
        spec.name, spec.uuid, PowerState.SHUTOFF, True)
    assert info.metadata == {"desktop": "42"}
    assert driver.define(spec).uuid == spec.uuid, "defining again is harmless"

    driver.start(spec.name)
    driver.start(spec.name)  # already running: no error
    assert driver.state(spec.name) == PowerState.RUNNING
    assert driver.shutdown(spec.name, timeout=5) == Shutdown.ACPI
    assert driver.state(spec.name) == PowerState.SHUTOFF

    driver.start(spec.name)
    driver.power_off(spec.name)
    driver.power_off(spec.name)  # already off: no error
    assert driver.state(spec.name) == PowerState.SHUTOFF

    driver.undefine(spec.name)
    driver.undefine(spec.name)  # gone: no error
    assert driver.state(spec.name) is None
    assert driver.lookup(spec.name) is None


def test_list_domains_includes_ours_with_metadata(driver, tmp_path):
    spec = make_spec(tmp_path, "vditest-list")
    driver.define(spec)
    try:
        found = {info.name: info for info in driver.list_domains()}
        assert found["vditest-list"].metadata == {"desktop": "42"}
        assert found["vditest-list"].disk_paths == (tmp_path / "vditest-list.qcow2",)
    finally:
        driver.undefine(spec.name)


def test_same_name_other_uuid_is_refused(driver, tmp_path):
    spec = make_spec(tmp_path, "vditest-dup")
    driver.define(spec)
    try:
        other = DomainSpec(**{**spec.__dict__, "uuid": str(uuid.uuid4())})
        with pytest.raises(HypervisorError, match="another domain has that name") as err:
            driver.define(other)
        assert err.value.retryable is False
    finally:
        driver.undefine(spec.name)


def test_verbs_on_missing_domain(driver):
    with pytest.raises(HypervisorError, match="does not exist"):
        driver.start("vditest-missing")
    assert driver.vnc_endpoint("vditest-missing") is None
    assert driver.shutdown("vditest-missing", 1) == Shutdown.ACPI


def test_unreachable_hypervisor_is_retryable():
    driver = Driver("qemu+unix:///system?socket=/nonexistent/libvirt-sock")
    with pytest.raises(HypervisorError) as err:
        driver.state("anything")
    assert err.value.retryable is True


def test_linked_clone_and_undefine_deletes_named_disks(driver, tmp_path):
    base = tmp_path / "base.qcow2"
    disks.create_blank(base, 1024 * 1024 * 1024)
    clone = driver.clone_disk(base, tmp_path / "clone.qcow2")
    assert clone.backing_file == base and clone.format == "qcow2"
    assert clone.actual_size < 1024 * 1024, "a linked clone does not copy the base"
    with pytest.raises(HypervisorError, match="already exists"):
        driver.clone_disk(base, tmp_path / "clone.qcow2")
    with pytest.raises(HypervisorError, match="base image is missing"):
        driver.clone_disk(tmp_path / "nope.qcow2", tmp_path / "other.qcow2")

    spec = make_spec(tmp_path, "vditest-disks")
    driver.define(spec)
    keep = tmp_path / "user-data.qcow2"
    disks.create_blank(keep, 1024 * 1024)
    driver.undefine(spec.name, delete_disks=(clone.path,))
    assert not clone.path.exists()
    assert keep.exists() and base.exists(), "only the named disks are deleted"

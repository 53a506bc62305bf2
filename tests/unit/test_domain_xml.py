"""The domain XML builder's output is valid for libvirt and says what the design requires."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from vdi.hypervisor import DiskSpec, DomainSpec, DomainType, KernelBoot
from vdi.hypervisor.domain_xml import (
    build_domain_xml,
    parse_disk_paths,
    parse_metadata,
    parse_serial_log,
    parse_vnc_endpoint,
)

SCHEMA = Path("/usr/share/libvirt/schemas/domain.rng")


@pytest.fixture(scope="module")
def relaxng() -> etree.RelaxNG:
    return etree.RelaxNG(etree.parse(str(SCHEMA)))


def spec(**changes: Any) -> DomainSpec:
    base: dict[str, Any] = dict(
        name="vditest-xml", uuid="0b7f0c7e-8a43-4d1c-9f65-2f9d4a3b1c11",
        domain_type=DomainType.QEMU, memory_mib=256, vcpus=1,
        disks=(DiskSpec(Path("/var/lib/vdi/disks/a.qcow2")),
               DiskSpec(Path("/var/lib/vdi/disks/a-data.qcow2"), "vdb")),
        serial_log=Path("/var/lib/vdi/logs/a.log"),
        kernel_boot=KernelBoot(Path("/img/vmlinuz"), Path("/img/initrd.img"), "root=/dev/vda rw"),
        metadata={"desktop": "7", "pool": "3"},
    )
    base.update(changes)
    return DomainSpec(**base)


@pytest.mark.parametrize(
    "variant",
    [
        {},
        {"kernel_boot": None},
        {"domain_type": DomainType.KVM, "vnc_password": "s3cret", "metadata": {}},
        {"kernel_boot": KernelBoot(Path("/img/vmlinuz"))},
    ],
    ids=["kernel-boot", "disk-boot", "kvm-password", "kernel-only"],
)
def test_output_validates_against_libvirt_schema(relaxng, variant):
    document = etree.fromstring(build_domain_xml(spec(**variant)).encode())
    assert relaxng.validate(document), relaxng.error_log


def test_required_devices_are_there():
    root = etree.fromstring(build_domain_xml(spec()).encode())
    assert root.get("type") == "qemu"
    assert root.find("features/acpi") is not None
    assert root.find("devices/video/model").get("type") == "vga"
    graphics = root.find("devices/graphics")
    assert (graphics.get("type"), graphics.get("autoport"), graphics.get("listen")) == (
        "vnc", "yes", "127.0.0.1")
    assert [t.get("bus") for t in root.findall("devices/disk/target")] == ["virtio", "virtio"]
    assert root.findtext("os/cmdline") == "root=/dev/vda rw"
    assert root.findtext("memory") == "256" and root.find("memory").get("unit") == "MiB"


def test_names_are_escaped_not_injected():
    xml = build_domain_xml(spec(name="a<b>&'\"", kernel_boot=KernelBoot(Path("/k"), None, "x<y")))
    root = etree.fromstring(xml.encode())
    assert root.findtext("name") == "a<b>&'\""
    assert root.findtext("os/cmdline") == "x<y"


def test_parsers_read_back_what_the_builder_wrote():
    xml = build_domain_xml(spec())
    assert parse_disk_paths(xml) == (Path("/var/lib/vdi/disks/a.qcow2"),
                                     Path("/var/lib/vdi/disks/a-data.qcow2"))
    assert parse_serial_log(xml) == Path("/var/lib/vdi/logs/a.log")
    assert parse_metadata(xml) == {"desktop": "7", "pool": "3"}
    assert parse_vnc_endpoint(xml) is None, "autoport has no port until the guest runs"
    live = xml.replace("autoport=\"yes\"", "autoport=\"yes\" port=\"5907\"")
    endpoint = parse_vnc_endpoint(live)
    assert endpoint is not None and (endpoint.host, endpoint.port) == ("127.0.0.1", 5907)

"""The domain XML builder's output is valid for libvirt and says what the design requires."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from vdi.hypervisor import (
    DiskSpec,
    Display,
    DomainSpec,
    DomainType,
    KernelBoot,
    MachineProfile,
    NicSpec,
    VncEndpoint,
)
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
def test_tiny_output_validates_against_libvirt_schema(relaxng, variant):
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


DESKTOP = dict(profile=MachineProfile.LINUX_DESKTOP,
               disks=(DiskSpec(Path("/d/a.qcow2")), DiskSpec(Path("/d/a-seed.img"), "vdc",
                                                             read_only=True, format="raw")),
               nics=(NicSpec("52:54:00:12:34:56", network="vdi-pool-3"),))
WINDOWS = dict(profile=MachineProfile.WINDOWS, kernel_boot=None,
               disks=(DiskSpec(Path("/d/w.qcow2"), "sda", bus="sata"),),
               nics=(NicSpec("52:54:00:ab:cd:ef", bridge="br0", model="e1000e"),))
INSTALL = dict(profile=MachineProfile.LINUX_DESKTOP, kernel_boot=None, boot=("cdrom", "hd"),
               disks=(DiskSpec(Path("/d/blank.qcow2")),
                      DiskSpec(Path("/iso/debian.iso"), "sda", bus="sata", device="cdrom",
                               format="raw")))


@pytest.mark.parametrize("variant", [
    DESKTOP, {**DESKTOP, "vnc_socket": Path("/h/vnc/a.sock"), "vnc_password": "pw"},
    {**DESKTOP, "nics": (NicSpec("52:54:00:00:00:01", network="default"),)},
    WINDOWS, {**WINDOWS, "domain_type": DomainType.KVM}, INSTALL,
    {**DESKTOP, "display": Display.SPICE, "vnc_password": "pw"},
    {**DESKTOP, "display": Display.SPICE, "vnc_socket": Path("/h/vnc/a.sock"),
     "clipboard": False},
    {"display": Display.SPICE},
], ids=["linux-desktop", "desktop-vnc-socket", "desktop-nat", "windows-tcg", "windows-kvm",
        "install-from-iso", "desktop-spice", "desktop-spice-socket", "tiny-spice"])
def test_every_profile_validates_against_libvirt_schema(relaxng, variant):
    document = etree.fromstring(build_domain_xml(spec(**variant)).encode())
    assert relaxng.validate(document), relaxng.error_log


def test_the_linux_desktop_profile_has_what_a_desktop_needs():
    root = etree.fromstring(build_domain_xml(spec(**DESKTOP)).encode())
    assert root.find("os/type").get("machine") == "q35"
    assert root.find("devices/video/model").get("type") == "virtio", "resize needs virtio-gpu"
    assert root.find("devices/input").get("bus") == "virtio"
    channels = {c.findtext("target") or c.find("target").get("name")
                for c in root.findall("devices/channel")}
    assert channels == {"org.qemu.guest_agent.0", "com.redhat.spice.0"}
    assert root.find("devices/channel[@type='qemu-vdagent']/source/clipboard").get(
        "copypaste") == "yes"
    nic = root.find("devices/interface")
    assert (nic.get("type"), nic.find("source").get("network"), nic.find("mac").get("address"),
            nic.find("model").get("type"), nic.find("rom").get("enabled")) == (
        "network", "vdi-pool-3", "52:54:00:12:34:56", "virtio", "no")
    assert root.find("devices/rng/backend").text == "/dev/urandom"
    assert root.find("devices/memballoon").get("model") == "virtio"
    seed = root.findall("devices/disk")[1]
    assert seed.find("readonly") is not None and seed.find("driver").get("type") == "raw"


def test_the_windows_profile_boots_without_extra_drivers():
    tcg = etree.fromstring(build_domain_xml(spec(**WINDOWS)).encode())
    kvm = etree.fromstring(build_domain_xml(spec(**WINDOWS, domain_type=DomainType.KVM)).encode())
    for root in (tcg, kvm):
        assert root.find("os").get("firmware") == "efi"
        assert {f.get("name") for f in root.findall("os/firmware/feature")} == {
            "enrolled-keys", "secure-boot"}
        assert root.find("features/smm").get("state") == "on"
        assert root.find("devices/tpm/backend").get("version") == "2.0"
        assert root.find("devices/disk/target").get("bus") == "sata"
        assert root.find("devices/interface/model").get("type") == "e1000e"
        assert root.find("devices/input").get("bus") == "usb"
        assert root.find("clock").get("offset") == "localtime"
    assert tcg.find("features/hyperv/vpindex") is None, "QEMU 7.2 refuses it under TCG"
    assert kvm.find("features/hyperv/vpindex") is not None
    assert kvm.find("features/hyperv/stimer/direct") is not None
    assert (tcg.find("cpu").get("mode"), kvm.find("cpu").get("mode")) == (
        "maximum", "host-passthrough")


def test_an_install_desktop_boots_the_cdrom_first():
    root = etree.fromstring(build_domain_xml(spec(**INSTALL)).encode())
    assert [b.get("dev") for b in root.findall("os/boot")] == ["cdrom", "hd"]
    cdrom = root.find("devices/disk[@device='cdrom']")
    assert cdrom.find("readonly") is not None and cdrom.find("target").get("bus") == "sata"


def test_vnc_on_a_unix_socket_is_read_back():
    xml = build_domain_xml(spec(**DESKTOP, vnc_socket=Path("/h/vnc/a.sock")))
    assert etree.fromstring(xml.encode()).find("devices/graphics").get("autoport") is None
    endpoint = parse_vnc_endpoint(xml)
    assert endpoint is not None and endpoint.socket == Path("/h/vnc/a.sock")


def test_a_spice_desktop_has_sound_its_agent_and_the_pools_clipboard():
    root = etree.fromstring(build_domain_xml(spec(
        **DESKTOP, display=Display.SPICE, vnc_password="pw", clipboard=False)).encode())
    graphics = root.find("devices/graphics")
    assert (graphics.get("type"), graphics.get("passwd"), graphics.get("listen")) == (
        "spice", "pw", "127.0.0.1")
    assert graphics.find("clipboard").get("copypaste") == "no"
    assert graphics.find("filetransfer").get("enable") == "no", "files go through the portal"
    assert root.find("devices/channel[@type='spicevmc']/target").get("name") == \
        "com.redhat.spice.0", "spice-vdagent talks to the SPICE client"
    assert root.find("devices/channel[@type='qemu-vdagent']") is None
    assert root.find("devices/sound/audio").get("id") == \
        root.find("devices/audio[@type='spice']").get("id"), "sound plays through SPICE"


def test_a_spice_endpoint_is_read_back_from_live_xml():
    xml = build_domain_xml(spec(display=Display.SPICE, vnc_password="pw"))
    live = xml.replace("autoport=", 'port="5912" autoport=')
    endpoint = parse_vnc_endpoint(live)
    assert endpoint == VncEndpoint("127.0.0.1", 5912, "pw", display=Display.SPICE)
    socket = build_domain_xml(spec(display=Display.SPICE, vnc_socket=Path("/h/s.sock")))
    endpoint = parse_vnc_endpoint(socket)
    assert endpoint is not None and endpoint.socket == Path("/h/s.sock")
    assert endpoint.display == Display.SPICE


NETWORK_SCHEMA = Path("/usr/share/libvirt/schemas/network.rng")


@pytest.mark.parametrize("nat", [False, True], ids=["isolated", "nat"])
def test_network_xml_validates_and_isolates(nat):
    from vdi.hypervisor.network_xml import NetworkSpec, build_network_xml, pool_network

    schema = etree.RelaxNG(etree.parse(str(NETWORK_SCHEMA)))
    isolated = pool_network(3)
    assert (isolated.name, isolated.bridge, isolated.subnet) == (
        "vdi-pool-3", "vdibr3", "10.100.3.0/24")
    assert pool_network(300).subnet == "10.101.44.0/24" and len(pool_network(99999).bridge) <= 15
    spec_ = NetworkSpec(isolated.name, isolated.bridge, isolated.subnet, nat=nat)
    root = etree.fromstring(build_network_xml(spec_).encode())
    assert schema.validate(root), schema.error_log
    assert (root.find("forward") is not None) == nat, "isolated: no forwarding at all"
    assert root.find("ip").get("address") == "10.100.3.1"
    assert root.find("ip/dhcp/range").get("end") == "10.100.3.254"
    assert root.find("dns").get("enable") == "no"

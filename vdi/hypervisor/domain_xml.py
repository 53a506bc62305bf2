"""The one place that writes and reads libvirt domain XML. Pure: no libvirt, no Django.

Tests validate ``build_domain_xml`` output against libvirt's RelaxNG schemas.
"""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from vdi.hypervisor.specs import DiskSpec, DomainSpec, VncEndpoint

METADATA_NS = "urn:vdi-portal:desktop:1"
METADATA_PREFIX = "vdi"


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    element = etree.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = text
    return element


def _os(domain: etree._Element, spec: DomainSpec) -> None:
    os_el = _sub(domain, "os")
    _sub(os_el, "type", "hvm", arch="x86_64", machine="pc")
    if spec.kernel_boot is None:
        _sub(os_el, "boot", dev="hd")
        return
    _sub(os_el, "kernel", str(spec.kernel_boot.kernel))
    if spec.kernel_boot.initrd is not None:
        _sub(os_el, "initrd", str(spec.kernel_boot.initrd))
    if spec.kernel_boot.cmdline:
        _sub(os_el, "cmdline", spec.kernel_boot.cmdline)


def _disk(devices: etree._Element, disk: DiskSpec) -> None:
    disk_el = _sub(devices, "disk", type="file", device="disk")
    _sub(disk_el, "driver", name="qemu", type="qcow2", discard="unmap")
    _sub(disk_el, "source", file=str(disk.path))
    _sub(disk_el, "target", dev=disk.target, bus="virtio")
    if disk.read_only:
        _sub(disk_el, "readonly")


def _graphics(devices: etree._Element, spec: DomainSpec) -> None:
    attrs = {"type": "vnc", "autoport": "yes", "listen": spec.vnc_listen}
    if spec.vnc_password:
        attrs["passwd"] = spec.vnc_password
    graphics = _sub(devices, "graphics", **attrs)
    _sub(graphics, "listen", type="address", address=spec.vnc_listen)


def _devices(domain: etree._Element, spec: DomainSpec) -> None:
    devices = _sub(domain, "devices")
    for disk in spec.disks:
        _disk(devices, disk)
    _sub(devices, "controller", type="usb", model="qemu-xhci")
    serial = _sub(devices, "serial", type="file")
    _sub(serial, "source", path=str(spec.serial_log), append="on")
    _sub(serial, "target", port="0")
    _sub(devices, "input", type="tablet", bus="usb")
    _graphics(devices, spec)
    video = _sub(devices, "video")
    _sub(video, "model", type="vga", vram="16384", heads="1")
    _sub(devices, "memballoon", model="none")


def _metadata(domain: etree._Element, spec: DomainSpec) -> None:
    if not spec.metadata:
        return
    metadata = _sub(domain, "metadata")
    desktop = etree.SubElement(
        metadata, f"{{{METADATA_NS}}}desktop", nsmap={METADATA_PREFIX: METADATA_NS}
    )
    for key, value in sorted(spec.metadata.items()):
        etree.SubElement(desktop, f"{{{METADATA_NS}}}{key}").text = value


def build_domain_xml(spec: DomainSpec) -> str:
    """Return the libvirt domain XML for ``spec``."""
    domain = etree.Element("domain", type=spec.domain_type.value)
    _sub(domain, "name", spec.name)
    _sub(domain, "uuid", spec.uuid)
    _metadata(domain, spec)
    _sub(domain, "memory", str(spec.memory_mib), unit="MiB")
    _sub(domain, "vcpu", str(spec.vcpus))
    _os(domain, spec)
    features = _sub(domain, "features")
    _sub(features, "acpi")
    _sub(features, "apic")
    _sub(domain, "clock", offset="utc")
    _sub(domain, "on_poweroff", "destroy")
    _sub(domain, "on_reboot", "restart")
    _sub(domain, "on_crash", "destroy")
    _devices(domain, spec)
    return etree.tostring(domain, pretty_print=True, encoding="unicode")


def _parse(xml: str) -> etree._Element:
    return etree.fromstring(xml.encode(), parser=etree.XMLParser(resolve_entities=False))


def parse_vnc_endpoint(xml: str) -> VncEndpoint | None:
    """The VNC endpoint of a running domain's live XML, or None when it has none yet."""
    graphics = _parse(xml).find("devices/graphics[@type='vnc']")
    if graphics is None:
        return None
    port = int(graphics.get("port", "-1"))
    if port <= 0:
        return None
    host = graphics.get("listen") or "127.0.0.1"
    return VncEndpoint(host=host, port=port, password=graphics.get("passwd"))


def parse_disk_paths(xml: str) -> tuple[Path, ...]:
    return tuple(Path(src) for src in _parse(xml).xpath("devices/disk/source/@file"))


def parse_serial_log(xml: str) -> Path | None:
    paths = _parse(xml).xpath("devices/serial[@type='file']/source/@path")
    return Path(paths[0]) if paths else None


def parse_metadata(xml: str) -> dict[str, str]:
    nodes = _parse(xml).xpath(
        f"metadata/{METADATA_PREFIX}:desktop/*", namespaces={METADATA_PREFIX: METADATA_NS}
    )
    return {etree.QName(node).localname: node.text or "" for node in nodes}

"""The one place that writes and reads libvirt domain XML. Pure: no libvirt, no Django.

Each machine profile (``MachineProfile``) is the virtual hardware of one kind of guest:

- ``tiny``: pc machine, VGA, USB tablet, direct kernel boot: the busybox test image.
- ``linux-desktop``: q35, virtio disks, virtio-gpu (a VNC client's window size reaches the
  guest, which QXL would not), virtio tablet (absolute pointer), virtio-net, virtio-rng, a
  balloon, the guest agent's channel and QEMU's vdagent channel (the VNC clipboard).
- ``windows``: q35, UEFI with Secure Boot and Microsoft's keys enrolled (needs SMM), a TPM 2.0
  from swtpm, Hyper-V enlightenments (the full set under KVM; under TCG QEMU 7.2 refuses
  vpindex and what depends on it), a CPU with SSE4.2/POPCNT, SATA disks, e1000e, a USB
  tablet, the clock in local time: what Windows boots with no extra drivers.

Tests validate the output of every profile against libvirt's RelaxNG schemas.
"""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from vdi.hypervisor.specs import (
    DiskSpec,
    Display,
    DomainSpec,
    DomainType,
    MachineProfile,
    NicSpec,
    VncEndpoint,
)

METADATA_NS = "urn:vdi-portal:desktop:1"
METADATA_PREFIX = "vdi"
AGENT_CHANNEL = "org.qemu.guest_agent.0"
VDAGENT_CHANNEL = "com.redhat.spice.0"
Enlightenment = tuple[str, dict[str, str]]
HYPERV_UNDER_TCG: tuple[Enlightenment, ...] = (
    ("relaxed", {}), ("vapic", {}), ("spinlocks", {"retries": "8191"}), ("runtime", {}),
    ("reset", {}), ("frequencies", {}))
HYPERV_UNDER_KVM: tuple[Enlightenment, ...] = (
    *HYPERV_UNDER_TCG, ("vpindex", {}), ("synic", {}), ("stimer", {}), ("tlbflush", {}),
    ("ipi", {}))


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    element = etree.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = text
    return element


def _machine(spec: DomainSpec) -> str:
    return "pc" if spec.profile == MachineProfile.TINY else "q35"


def _os(domain: etree._Element, spec: DomainSpec) -> None:
    attrs = {"firmware": "efi"} if spec.profile == MachineProfile.WINDOWS else {}
    os_el = _sub(domain, "os", **attrs)
    _sub(os_el, "type", "hvm", arch="x86_64", machine=_machine(spec))
    if spec.profile == MachineProfile.WINDOWS:
        firmware = _sub(os_el, "firmware")
        _sub(firmware, "feature", enabled="yes", name="enrolled-keys")
        _sub(firmware, "feature", enabled="yes", name="secure-boot")
    if spec.kernel_boot is None:
        for device in spec.boot:
            _sub(os_el, "boot", dev=device)
        return
    _sub(os_el, "kernel", str(spec.kernel_boot.kernel))
    if spec.kernel_boot.initrd is not None:
        _sub(os_el, "initrd", str(spec.kernel_boot.initrd))
    if spec.kernel_boot.cmdline:
        _sub(os_el, "cmdline", spec.kernel_boot.cmdline)


def _features(domain: etree._Element, spec: DomainSpec) -> None:
    features = _sub(domain, "features")
    _sub(features, "acpi")
    _sub(features, "apic")
    if spec.profile != MachineProfile.WINDOWS:
        return
    hyperv = _sub(features, "hyperv", mode="custom")
    enlightenments = HYPERV_UNDER_KVM if spec.domain_type == DomainType.KVM else HYPERV_UNDER_TCG
    for name, attrs in enlightenments:
        element = _sub(hyperv, name, state="on", **attrs)
        if name == "stimer":
            _sub(element, "direct", state="on")
    _sub(features, "vmport", state="off")
    _sub(features, "smm", state="on")  # Secure Boot needs it


def _cpu_and_clock(domain: etree._Element, spec: DomainSpec) -> None:
    if spec.profile == MachineProfile.WINDOWS:
        mode = "host-passthrough" if spec.domain_type == DomainType.KVM else "maximum"
        _sub(domain, "cpu", mode=mode, check="none")
        clock = _sub(domain, "clock", offset="localtime")
        _sub(clock, "timer", name="rtc", tickpolicy="catchup")
        _sub(clock, "timer", name="pit", tickpolicy="delay")
        _sub(clock, "timer", name="hpet", present="no")
        if spec.domain_type == DomainType.KVM:
            _sub(clock, "timer", name="hypervclock", present="yes")
        return
    _sub(domain, "clock", offset="utc")


def _disk(devices: etree._Element, disk: DiskSpec) -> None:
    disk_el = _sub(devices, "disk", type="file", device=disk.device)
    driver = {"name": "qemu", "type": disk.format}
    if disk.device == "disk":
        driver["discard"] = "unmap"
    _sub(disk_el, "driver", **driver)
    _sub(disk_el, "source", file=str(disk.path))
    _sub(disk_el, "target", dev=disk.target, bus=disk.bus)
    if disk.read_only or disk.device == "cdrom":
        _sub(disk_el, "readonly")


def _nic(devices: etree._Element, nic: NicSpec) -> None:
    if nic.bridge:
        interface = _sub(devices, "interface", type="bridge")
        _sub(interface, "source", bridge=nic.bridge)
    else:
        interface = _sub(devices, "interface", type="network")
        _sub(interface, "source", network=nic.network or "default")
    _sub(interface, "mac", address=nic.mac)
    _sub(interface, "model", type=nic.model)
    _sub(interface, "rom", enabled="no")  # no network boot: firmware sends nothing


def _graphics(devices: etree._Element, spec: DomainSpec) -> None:
    if spec.display == Display.SPICE:
        _spice(devices, spec)
        return
    if spec.vnc_socket is not None:
        attrs = {"type": "vnc", "socket": str(spec.vnc_socket)}
        if spec.vnc_password:
            attrs["passwd"] = spec.vnc_password
        _sub(devices, "graphics", **attrs)
        return
    attrs = {"type": "vnc", "autoport": "yes", "listen": spec.vnc_listen}
    if spec.vnc_password:
        attrs["passwd"] = spec.vnc_password
    graphics = _sub(devices, "graphics", **attrs)
    _sub(graphics, "listen", type="address", address=spec.vnc_listen)


def _spice(devices: etree._Element, spec: DomainSpec) -> None:
    """SPICE on loopback (or a unix socket) behind the console proxy: no TLS, its password
    known only to the proxy, the clipboard as the pool says, file transfer and USB
    redirection off (files go through the portal), sound through SPICE's playback channel."""
    attrs = {"type": "spice"}
    if spec.vnc_socket is None:
        attrs.update(autoport="yes", listen=spec.vnc_listen)
    if spec.vnc_password:
        attrs["passwd"] = spec.vnc_password
    graphics = _sub(devices, "graphics", **attrs)
    if spec.vnc_socket is not None:
        _sub(graphics, "listen", type="socket", socket=str(spec.vnc_socket))
    else:
        _sub(graphics, "listen", type="address", address=spec.vnc_listen)
    _sub(graphics, "image", compression="auto_glz")
    _sub(graphics, "clipboard", copypaste="yes" if spec.clipboard else "no")
    _sub(graphics, "filetransfer", enable="no")
    sound = _sub(devices, "sound", model="ich9" if spec.profile != MachineProfile.TINY
                 else "ich6")
    _sub(sound, "audio", id="1")
    _sub(devices, "audio", id="1", type="spice")


def _channels(devices: etree._Element, spec: DomainSpec) -> None:
    agent = _sub(devices, "channel", type="unix")
    _sub(agent, "source", mode="bind")
    _sub(agent, "target", type="virtio", name=AGENT_CHANNEL)
    if spec.display == Display.SPICE:  # spice-vdagent talks to the SPICE client
        vdagent = _sub(devices, "channel", type="spicevmc")
    else:  # QEMU's own vdagent: the VNC clipboard
        vdagent = _sub(devices, "channel", type="qemu-vdagent")
        source = _sub(vdagent, "source")
        _sub(source, "clipboard", copypaste="yes")
        _sub(source, "mouse", mode="client")
    _sub(vdagent, "target", type="virtio", name=VDAGENT_CHANNEL)


def _devices(domain: etree._Element, spec: DomainSpec) -> None:
    devices = _sub(domain, "devices")
    for disk in spec.disks:
        _disk(devices, disk)
    for nic in spec.nics:
        _nic(devices, nic)
    desktop = spec.profile == MachineProfile.LINUX_DESKTOP
    if not desktop:
        _sub(devices, "controller", type="usb", model="qemu-xhci")
    serial = _sub(devices, "serial", type="file")
    _sub(serial, "source", path=str(spec.serial_log), append="on")
    _sub(serial, "target", port="0")
    if desktop:
        _channels(devices, spec)
    _sub(devices, "input", type="tablet", bus="virtio" if desktop else "usb")
    _graphics(devices, spec)
    video = _sub(devices, "video")
    if desktop:
        _sub(video, "model", type="virtio", heads="1", primary="yes")
    else:
        _sub(video, "model", type="vga", vram="16384", heads="1")
    if spec.profile == MachineProfile.WINDOWS:
        tpm = _sub(devices, "tpm", model="tpm-crb")
        _sub(tpm, "backend", type="emulator", version="2.0")
    if desktop:
        rng = _sub(devices, "rng", model="virtio")
        _sub(rng, "backend", "/dev/urandom", model="random")
        _sub(devices, "memballoon", model="virtio")
    else:
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
    _features(domain, spec)
    _cpu_and_clock(domain, spec)
    _sub(domain, "on_poweroff", "destroy")
    _sub(domain, "on_reboot", "restart")
    _sub(domain, "on_crash", "destroy")
    _devices(domain, spec)
    return etree.tostring(domain, pretty_print=True, encoding="unicode")


def _parse(xml: str) -> etree._Element:
    return etree.fromstring(xml.encode(), parser=etree.XMLParser(resolve_entities=False))


def parse_vnc_endpoint(xml: str) -> VncEndpoint | None:
    """The display (VNC or SPICE) endpoint of a running domain's live XML, or None when it
    has none yet."""
    graphics = _parse(xml).find("devices/graphics")
    kind = graphics.get("type", "") if graphics is not None else ""
    if graphics is None or kind not in (Display.VNC, Display.SPICE):
        return None
    display = Display(kind)
    password = graphics.get("passwd")
    listen = graphics.find("listen[@type='socket']")
    socket = graphics.get("socket") or (listen.get("socket", "") if listen is not None else "")
    if socket:
        return VncEndpoint(host="", port=0, password=password, socket=Path(socket),
                           display=display)
    port = int(graphics.get("port", "-1"))
    if port <= 0:
        return None
    host = graphics.get("listen") or "127.0.0.1"
    return VncEndpoint(host=host, port=port, password=password, display=display)


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

"""Build the tiny golden image: a Debian kernel, a busybox root on ext4, a small initramfs.

The guest's init mounts /proc, /sys and /dev, mounts a data disk (``/dev/vdb``) on /data when
there is one, prints ``READY_MARKER`` on the serial port, answers the ACPI power button with a
clean power-off, and runs a login shell on /dev/tty1 so the VNC screen shows a prompt.

Nothing here needs root privileges or a network beyond Debian's packages; ``mkfs.ext4 -d``
fills the file system from a folder without mounting it.
"""

from __future__ import annotations

import gzip
import io
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from vdi.folders import shared_folder
from vdi.hypervisor import disks
from vdi.images.cpio import NewcWriter

READY_MARKER = "VDI-GUEST-READY"
PROBE_MARKER = "VDI-PROBE-OK"
CMDLINE = "root=/dev/vda rw console=ttyS0 console=tty0 quiet"
BUSYBOX = Path("/bin/busybox")
ROOT_SIZE = "64M"
ROOT_FOLDERS = (
    "bin", "sbin", "etc/acpi/PWRF", "var/log", "var/run", "proc", "sys", "dev", "tmp", "data",
    "root",
)
INITRAMFS_MODULES = ("virtio_pci", "virtio_blk", "crc32c_generic", "ext4", "button", "evdev")

INITRAMFS_INIT = """#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /newroot /bin /sbin /usr/bin /usr/sbin
/bin/busybox --install -s 2>/dev/null
mount -t devtmpfs dev /dev
mount -t proc proc /proc
for m in $(cat /modules.order); do insmod /lib/modules/$m.ko 2>/dev/null; done
if grep -q vdi.probe=1 /proc/cmdline; then
  echo "{probe}" > /dev/ttyS0
  poweroff -f
fi
root=/dev/vda
for arg in $(cat /proc/cmdline); do case $arg in root=*) root=${{arg#root=}};; esac; done
i=0
while [ ! -b "$root" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
mount -t ext4 -o rw "$root" /newroot || {{ echo "vdi: cannot mount $root" > /dev/ttyS0; exec sh; }}
umount /proc
mount --move /dev /newroot/dev
exec switch_root /newroot /sbin/init
"""

ROOT_INIT = """#!/bin/sh
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mkdir -p /dev/pts /tmp /data
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
hostname -F /etc/hostname
if [ -b /dev/vdb ]; then mount -t ext4 /dev/vdb /data && echo "VDI-DATA-MOUNTED" > /dev/ttyS0; fi
mkdir -p /var/log /var/run
acpid -c /etc/acpi -l /var/log/acpid.log
echo "{ready}" > /dev/ttyS0
while true; do
  setsid sh -c 'exec sh -l </dev/tty1 >/dev/tty1 2>&1'
done
"""

POWER_BUTTON = """#!/bin/sh
echo "VDI-POWER-BUTTON" > /dev/ttyS0
sync
poweroff -f
"""

PROFILE = """export PATH=/bin:/sbin
export PS1='tiny:$(pwd)# '
echo 'VDI tiny desktop. Type commands; the data disk, if any, is on /data.'
"""


@dataclass(frozen=True)
class KernelFiles:
    vmlinuz: Path
    modules: Path  # lib/modules/<version>

    @property
    def version(self) -> str:
        return self.modules.name


@dataclass(frozen=True)
class TinyImage:
    disk: Path
    kernel: Path
    initrd: Path
    cmdline: str


def find_kernel(root: Path) -> KernelFiles:
    """Find a Debian kernel and its modules under ``root`` (``/`` or an unpacked .deb)."""
    for vmlinuz in sorted((root / "boot").glob("vmlinuz-*"), reverse=True):
        version = vmlinuz.name.removeprefix("vmlinuz-")
        for lib in ("lib", "usr/lib"):
            modules = root / lib / "modules" / version
            if (modules / "kernel").is_dir():
                return KernelFiles(vmlinuz=vmlinuz, modules=modules)
    raise FileNotFoundError(f"no Debian kernel with modules under {root}")


def _module_index(modules: Path) -> dict[str, Path]:
    return {p.name.removesuffix(".ko").replace("-", "_"): p for p in modules.rglob("*.ko")}


def _depends(module: Path) -> list[str]:
    match = re.search(rb"\x00depends=([^\x00]*)\x00", module.read_bytes())
    if not match:
        return []
    return [name.replace("-", "_") for name in match.group(1).decode().split(",") if name]


def module_load_order(modules: Path, wanted: tuple[str, ...]) -> list[tuple[str, Path]]:
    """``wanted`` with their dependencies, each after what it depends on."""
    index = _module_index(modules)
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        if name not in index:
            raise FileNotFoundError(f"kernel module {name} not found under {modules}")
        for dependency in _depends(index[name]):
            visit(dependency)
        order.append(name)

    for name in wanted:
        visit(name)
    return [(name, index[name]) for name in order]


def build_initramfs(kernel: KernelFiles, target: Path, busybox: Path = BUSYBOX) -> None:
    buffer = io.BytesIO()
    writer = NewcWriter(buffer)
    for folder in ("bin", "dev", "lib", "lib/modules", "proc", "sys", "newroot"):
        writer.directory(folder)
    writer.char_device("dev/console", 5, 1)
    writer.char_device("dev/null", 1, 3, 0o666)
    writer.file("bin/busybox", busybox.read_bytes(), 0o755)
    writer.file("init", INITRAMFS_INIT.format(probe=PROBE_MARKER).encode(), 0o755)
    order = module_load_order(kernel.modules, INITRAMFS_MODULES)
    writer.file("modules.order", "\n".join(name for name, _ in order).encode() + b"\n")
    for name, path in order:
        writer.file(f"lib/modules/{name}.ko", path.read_bytes())
    writer.close()
    target.write_bytes(gzip.compress(buffer.getvalue(), mtime=0))


def populate_root(root: Path, busybox: Path = BUSYBOX, hostname: str = "tiny") -> None:
    """Lay out the guest's root file system in the folder ``root``."""
    for folder in ROOT_FOLDERS:
        (root / folder).mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox, root / "bin" / "busybox")
    applets = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True)
    for applet in applets.stdout.split():
        link = root / "bin" / applet
        if applet != "busybox" and not link.exists():
            link.symlink_to("busybox")
    files = {
        "sbin/init": (ROOT_INIT.format(ready=READY_MARKER), 0o755),
        "etc/acpi/PWRF/00000080": (POWER_BUTTON, 0o755),
        "etc/profile": (PROFILE, 0o644),
        "etc/hostname": (hostname + "\n", 0o644),
        "etc/passwd": ("root:x:0:0:root:/root:/bin/sh\n", 0o644),
        "etc/group": ("root:x:0:\n", 0o644),
    }
    for name, (text, mode) in files.items():
        path = root / name
        path.write_text(text)
        path.chmod(mode)


def build_root_disk(target: Path, busybox: Path = BUSYBOX) -> None:
    """The root file system as a qcow2 file (ext4 inside, filled with ``mkfs.ext4 -d``)."""
    with tempfile.TemporaryDirectory(prefix="vdi-tiny-") as tmp:
        folder, raw = Path(tmp) / "root", Path(tmp) / "root.ext4"
        populate_root(folder, busybox)
        subprocess.run(
            ["mkfs.ext4", "-q", "-F", "-L", "tiny-root", "-d", str(folder), str(raw), ROOT_SIZE],
            check=True, capture_output=True,
        )
        disks.convert_to_qcow2(raw, target)


def build_tiny_image(kernel: KernelFiles, out_dir: Path) -> TinyImage:
    """Write disk.qcow2, vmlinuz and initrd.img into ``out_dir`` (which must not exist yet)."""
    shared_folder(out_dir.parent)
    out_dir.mkdir()
    out_dir.chmod(0o755)
    image = TinyImage(
        disk=out_dir / "disk.qcow2",
        kernel=out_dir / "vmlinuz",
        initrd=out_dir / "initrd.img",
        cmdline=CMDLINE,
    )
    shutil.copyfile(kernel.vmlinuz, image.kernel)
    build_initramfs(kernel, image.initrd)
    build_root_disk(image.disk)
    for path in (image.disk, image.kernel, image.initrd):
        path.chmod(0o444)
    return image

"""A small installer ISO for the tests, made in about a second, without root.

The ISO boots (isolinux, BIOS) the project's Debian kernel with an initramfs that installs
unattended, the way a real installer does: it finds its CD-ROM and the first disk, writes a
partition table, makes ext4, unpacks a Debian-looking root (``/etc/os-release``, busybox,
``/etc/fstab``: libguestfs recognizes it as Debian 12) with some clone dirt for
``virt-sysprep`` (a machine-id, SSH host keys, logs), installs a boot loader (extlinux, with
the tiny image's kernel and initramfs), prints ``DONE_MARKER`` on its serial port and powers
off. The installed system boots from its own disk and prints ``READY_MARKER`` with its
machine-id (empty once cleaned for cloning). Any failure prints ``FAIL_MARKER: <why>``.
"""

from __future__ import annotations

import gzip
import io
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from vdi.hypervisor.disks import convert_to_qcow2
from vdi.images.cpio import NewcWriter
from vdi.images.tiny import BUSYBOX, READY_MARKER, KernelFiles, build_initramfs, module_load_order

DONE_MARKER = "INSTALL-DONE"
FAIL_MARKER = "INSTALL-FAILED"
VOLUME_ID = "VDI_TEST_INSTALLER"
MODULES = ("ahci", "ata_piix", "sd_mod", "sr_mod", "virtio_pci", "virtio_blk",
           "crc32c_generic", "ext4", "isofs")
TOOLS = ("/sbin/sfdisk", "/sbin/mke2fs", "/usr/bin/extlinux")
MBR = Path("/usr/lib/syslinux/mbr/mbr.bin")
ISOLINUX = (Path("/usr/lib/ISOLINUX/isolinux.bin"),
            Path("/usr/lib/syslinux/modules/bios/ldlinux.c32"))
ISOHYBRID_MBR = Path("/usr/lib/ISOLINUX/isohdpfx.bin")

# Debian's static busybox runs its own applets before $PATH: the real tools by full path.
INSTALLER = r"""#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp /target /cdrom /usr/bin /sbin
/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/bin LD_LIBRARY_PATH=/lib/x86_64-linux-gnu
mount -t devtmpfs dev /dev; mount -t proc proc /proc; mount -t sysfs sys /sys
say() { echo "installer: $*" > /dev/ttyS0; }
fail() { echo "@FAIL@: $*" > /dev/ttyS0; sync; sleep 1; poweroff -f; }
for m in $(cat /modules.order); do insmod "/lib/modules/$m.ko" 2>/dev/null; done
i=0
while [ $i -lt 300 ]; do
  for d in /dev/sr0 /dev/sr1; do
    [ -b "$d" ] && mount -t iso9660 -o ro "$d" /cdrom 2>/dev/null && break 2
  done
  sleep 0.2; i=$((i+1))
done
[ -f /cdrom/install/rootfs.tar.gz ] || fail "no installation CD-ROM"
target=""; i=0
while [ -z "$target" ] && [ $i -lt 150 ]; do
  for d in /dev/vda /dev/sda; do [ -b "$d" ] && { target=$d; break; }; done
  [ -n "$target" ] || { sleep 0.2; i=$((i+1)); }
done
[ -n "$target" ] || fail "no disk to install on"
say "installing on $target"
printf 'label: dos\nstart=2048, type=83, bootable\n' | /sbin/sfdisk -q "$target" >/tmp/log 2>&1 \
  || fail "sfdisk: $(tail -n1 /tmp/log)"
part="${target}1"; i=0
while [ ! -b "$part" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
uuid=$(cat /proc/sys/kernel/random/uuid)
/sbin/mke2fs -q -F -t ext4 -O ^64bit -L debian-root -U "$uuid" "$part" >/tmp/log 2>&1 \
  || fail "mke2fs: $(tail -n1 /tmp/log)"
mount -t ext4 "$part" /target || fail "cannot mount $part"
tar -xzf /cdrom/install/rootfs.tar.gz -C /target || fail "unpacking the system failed"
echo "UUID=$uuid / ext4 errors=remount-ro 0 1" > /target/etc/fstab
tr -d '-' < /proc/sys/kernel/random/uuid > /target/etc/machine-id
cp /cdrom/install/vmlinuz /cdrom/install/initrd.img /target/boot/
{ printf 'DEFAULT debian\nPROMPT 0\nTIMEOUT 0\nLABEL debian\n  KERNEL /boot/vmlinuz\n'
  printf '  INITRD /boot/initrd.img\n  APPEND root=%s rw console=ttyS0 quiet\n' "$part"
} > /target/boot/extlinux.conf
/usr/bin/extlinux --install /target/boot >/tmp/log 2>&1 || fail "extlinux: $(tail -n1 /tmp/log)"
dd if=/cdrom/install/mbr.bin of="$target" bs=440 count=1 conv=notrunc 2>/dev/null
umount /target; sync
echo "@DONE@ root=$part" > /dev/ttyS0
sleep 1; poweroff -f
"""

INSTALLED_INIT = r"""#!/bin/sh
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev 2>/dev/null
hostname -F /etc/hostname
acpid -c /etc/acpi
echo "@READY@ $(cat /etc/hostname) machine-id=$(cat /etc/machine-id)" > /dev/ttyS0
while true; do setsid sh -c 'exec sh -l </dev/tty1 >/dev/tty1 2>&1'; done
"""

POWER_BUTTON = "#!/bin/sh\nsync\npoweroff -f\n"
OS_RELEASE = ('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
              'VERSION_ID="12"\nVERSION_CODENAME=bookworm\nID=debian\n')
CLONE_DIRT = {  # what virt-sysprep removes
    "etc/ssh/ssh_host_ed25519_key": "not a real key\n",
    "root/.bash_history": "apt-get update\n",
    "var/log/installer.log": "installed\n",
}


def _libraries(binary: str) -> list[str]:
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=False).stdout
    return re.findall(r"(/\S+) \(0x", out)


def installer_initramfs(kernel: KernelFiles) -> bytes:
    buffer = io.BytesIO()
    writer = NewcWriter(buffer)
    for folder in ("bin", "sbin", "usr", "usr/bin", "dev", "lib", "lib/modules", "lib64",
                   "lib/x86_64-linux-gnu", "etc"):
        writer.directory(folder)
    writer.char_device("dev/console", 5, 1)
    writer.file("bin/busybox", BUSYBOX.read_bytes(), 0o755)
    script = INSTALLER.replace("@FAIL@", FAIL_MARKER).replace("@DONE@", DONE_MARKER)
    writer.file("init", script.encode(), 0o755)
    order = module_load_order(kernel.modules, MODULES)
    writer.file("modules.order", "\n".join(name for name, _ in order).encode() + b"\n")
    for name, path in order:
        writer.file(f"lib/modules/{name}.ko", path.read_bytes())
    libraries = sorted({lib for tool in TOOLS for lib in _libraries(tool)})
    for copied in (*TOOLS, *libraries, "/etc/mke2fs.conf"):
        writer.file(copied.lstrip("/"), Path(copied).read_bytes(), 0o755)
    writer.close()
    return gzip.compress(buffer.getvalue(), mtime=0)


def system_tarball(hostname: str) -> bytes:
    """The installed system: root-owned entries (no root privileges needed to make them)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        def add(name: str, data: bytes | None = None, mode: int = 0o644, link: str = "") -> None:
            info = tarfile.TarInfo(name)
            info.mode = mode
            if link:
                info.type, info.linkname = tarfile.SYMTYPE, link
            elif data is None:
                info.type = tarfile.DIRTYPE
            else:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)

        for folder in ("bin", "boot", "dev", "etc", "etc/acpi", "etc/acpi/PWRF", "etc/ssh",
                       "proc", "root", "sys", "tmp", "usr", "usr/lib", "var", "var/log"):
            add(folder, mode=0o755)
        add("bin/busybox", BUSYBOX.read_bytes(), 0o755)
        applets = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True,
                                 check=True).stdout.split()
        for applet in set(applets) - {"busybox", "init"}:
            add(f"bin/{applet}", link="busybox")
        add("sbin", link="bin")
        add("sbin/init", INSTALLED_INIT.replace("@READY@", READY_MARKER).encode(), 0o755)
        add("etc/acpi/PWRF/00000080", POWER_BUTTON.encode(), 0o755)
        add("usr/lib/os-release", OS_RELEASE.encode())
        add("etc/os-release", link="../usr/lib/os-release")
        add("etc/debian_version", b"12.0\n")
        add("etc/hostname", f"{hostname}\n".encode())
        add("etc/hosts", f"127.0.0.1 localhost {hostname}\n".encode())
        add("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
        add("etc/group", b"root:x:0:\n")
        for name, text in CLONE_DIRT.items():
            add(name, text.encode(), 0o600)
    return buffer.getvalue()


def make_install_iso(kernel: KernelFiles, target: Path, hostname: str = "installed") -> Path:
    """Write the installer ISO to ``target`` (xorriso, isolinux)."""
    with tempfile.TemporaryDirectory(prefix="vdi-iso-") as tmp:
        tree = Path(tmp) / "iso"
        for folder in ("boot", "install", "isolinux"):
            (tree / folder).mkdir(parents=True)
        shutil.copyfile(kernel.vmlinuz, tree / "boot" / "vmlinuz")
        (tree / "boot" / "initrd.gz").write_bytes(installer_initramfs(kernel))
        (tree / "install" / "rootfs.tar.gz").write_bytes(system_tarball(hostname))
        shutil.copyfile(kernel.vmlinuz, tree / "install" / "vmlinuz")
        build_initramfs(kernel, tree / "install" / "initrd.img")
        shutil.copyfile(MBR, tree / "install" / "mbr.bin")
        for loader in ISOLINUX:
            shutil.copyfile(loader, tree / "isolinux" / loader.name)
        (tree / "isolinux" / "isolinux.cfg").write_text(
            "SERIAL 0 115200\nDEFAULT install\nPROMPT 0\nTIMEOUT 0\nLABEL install\n"
            "  KERNEL /boot/vmlinuz\n  INITRD /boot/initrd.gz\n"
            "  APPEND console=tty0 console=ttyS0,115200 panic=10\n")
        target.unlink(missing_ok=True)
        subprocess.run(
            ["xorriso", "-as", "mkisofs", "-quiet", "-o", str(target), "-V", VOLUME_ID, "-J",
             "-R", "-b", "isolinux/isolinux.bin", "-c", "isolinux/boot.cat", "-no-emul-boot",
             "-boot-load-size", "4", "-boot-info-table", "-isohybrid-mbr", str(ISOHYBRID_MBR),
             str(tree)], check=True, capture_output=True)
    return target


def installed_system_disk(target: Path, hostname: str = "installed") -> Path:
    """What the installer puts on its disk, made without booting it: the same system on a bare
    ext4 file system (no partition table, no boot loader) as a qcow2 file, booted with the tiny
    image's kernel and initramfs (``root=/dev/vda``), with a machine-id and the rest of the
    clone dirt for ``virt-sysprep`` to remove."""
    with tempfile.TemporaryDirectory(prefix="vdi-installed-") as tmp:
        root, raw = Path(tmp) / "root", Path(tmp) / "root.ext4"
        with tarfile.open(fileobj=io.BytesIO(system_tarball(hostname)), mode="r:gz") as tar:
            tar.extractall(root)  # noqa: S202 (its own tarball, made just above)
        (root / "etc" / "machine-id").write_text("0123456789abcdef0123456789abcdef\n")
        subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "debian-root", "-d", str(root),
                        str(raw), "64M"], check=True, capture_output=True)
        target.unlink(missing_ok=True)
        convert_to_qcow2(raw, target)
    return target

"""Build the Debian desktop image from Debian's packages alone, unattended.

``mmdebstrap`` (with the machine's apt sources, nothing from anywhere else) installs a
minimal Debian 12 with systemd, the IceWM desktop (panel, PCManFM, xterm), the QEMU guest
agent, spice-vdagent (the VNC clipboard), DHCP on virtio NICs and a small initrd; the hooks in
``hooks/`` make the desktop's user sign in by itself into X, take a per-desktop host name from
a cloud-init NoCloud seed at first boot, and leave no machine id, logs or caches. In the session,
``vdi-selections`` (Python and GTK) keeps the selection xterm pastes (PRIMARY) and the clipboard
in step, and the desktop's icons start their program on a double click. The root is
written into an ext4 image inside the build (so file owners are right even when the worker
builds it unprivileged, in a user namespace), then converted to qcow2.

The build is keyed by its recipe and the package versions apt resolves for it today
(``build_key``): an unchanged key reuses the cached result. Failures say why in words: no
space, apt sources unreachable, an unknown package, or the build's own last lines.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vdi.hypervisor import disks

HERE = Path(__file__).resolve().parent
SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
SUITE = "bookworm"
USER_NAME = "user"
CMDLINE = "root=LABEL=vdiroot rw quiet console=ttyS0"
SESSION_PROCESS = "icewm"  # runs once the graphical session is on screen
DISK_SIZE = "8G"
FREE_SPACE_NEEDED = 4 * 1024**3
PACKAGES = (
    "systemd-sysv", "udev", "libpam-systemd", "dbus", "dbus-user-session", "linux-image-amd64",
    "initramfs-tools", "kmod", "zstd", "procps", "iproute2", "less", "xserver-xorg-core",
    "xserver-xorg-video-qxl", "xserver-xorg-input-libinput", "xinit", "x11-xserver-utils",
    "x11-xkb-utils", "xfonts-base", "fonts-dejavu-core", "qemu-guest-agent", "spice-vdagent",
    "systemd-resolved", "icewm", "pcmanfm", "xterm", "adwaita-icon-theme", "librsvg2-common",
    "dosfstools", "xclip", "python3-gi", "gir1.2-gtk-3.0",
    "alsa-utils",  # aplay: the SPICE console's "Test sound"
)
STEPS = (  # mmdebstrap's progress lines -> percent done
    ("running apt-get update", 5), ("downloading packages", 10), ("extracting archives", 30),
    ("installing essential", 35), ("installing remaining", 45), ("customize-hook", 75),
    ("cleaning", 85),
)
Progress = Callable[[int, str], None]


class BuildError(Exception):
    """The build failed; the message says why in words."""


@dataclass(frozen=True)
class BuiltImage:
    disk: Path
    kernel: Path
    initrd: Path
    cmdline: str
    packages: str
    build_key: str


def recipe_digest() -> str:
    """The recipe: packages, command line, user, size, and every hook and file, hashed."""
    digest = hashlib.sha256()
    digest.update("\n".join((*PACKAGES, CMDLINE, USER_NAME, DISK_SIZE, SUITE)).encode())
    for path in sorted(p for p in (HERE / "hooks").rglob("*") if p.is_file()) + sorted(
            p for p in (HERE / "files").rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(HERE)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def resolved_versions() -> str:
    """The package versions apt would install for the recipe, from the machine's apt lists
    (empty when apt knows none: then the key is the recipe's alone)."""
    command = ["apt-get", "-s", "-o", "Dir::State::status=/dev/null",
               "-o", "APT::Install-Recommends=false", "install", "apt", "dpkg", *PACKAGES]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    found = re.findall(r"^Inst (\S+) \((\S+)", result.stdout, re.MULTILINE)
    return "\n".join(f"{name} {version}" for name, version in sorted(found))


def build_key() -> str:
    return hashlib.sha256((recipe_digest() + resolved_versions()).encode()).hexdigest()


def _check_space(folder: Path) -> None:
    free = shutil.disk_usage(folder).free
    if free < FREE_SPACE_NEEDED:
        raise BuildError(f"not enough space: {free // 1024**2} MiB free in {folder}, the build "
                         f"needs about {FREE_SPACE_NEEDED // 1024**2} MiB")


def _stage(work: Path) -> Path:
    """The hooks and files, where the build's user namespace can read them."""
    stage = work / "recipe"
    shutil.copytree(HERE / "hooks", stage / "hooks")
    shutil.copytree(HERE / "files", stage / "files")
    for path in [stage, *stage.rglob("*")]:
        path.chmod(0o755 if path.is_dir() or path.suffix == ".sh" or "bin" in path.parts
                   else 0o644)
    return stage


def _command(stage: Path, out: Path, raw: Path) -> list[str]:
    mode = "root" if os.geteuid() == 0 else "unshare"
    hooks, files = stage / "hooks", stage / "files"
    return [
        "mmdebstrap", "--variant=minbase", f"--mode={mode}", "--format=null",
        "--aptopt=Apt::Install-Recommends \"false\"",
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-include=/usr/share/doc/*/copyright",
        "--dpkgopt=path-exclude=/usr/share/man/*", "--dpkgopt=path-exclude=/usr/share/info/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        "--dpkgopt=path-include=/usr/share/locale/locale.alias",
        f"--include={','.join(PACKAGES)}",
        f"--essential-hook=sh {hooks}/essential.sh \"$1\"",
        f"--customize-hook=sh {hooks}/customize.sh \"$1\" {files} {USER_NAME}",
        "--customize-hook=rm -f \"$1/etc/resolv.conf\" \"$1/etc/apt/apt.conf.d/99mmdebstrap\"",
        f"--customize-hook=copy-out /boot {out}",
        f"--customize-hook=download /.vdi-packages {out}/packages.txt",
        # The root without what the build mounts on it (/dev, /proc, /sys): a plain bind.
        f"--customize-hook=umask 022; mkdir -p {raw.parent}/rootfs"
        f" && mount --bind \"$1\" {raw.parent}/rootfs"
        " && mkfs.ext4 -q -F -L vdiroot -E lazy_itable_init=1,lazy_journal_init=1"
        f" -d {raw.parent}/rootfs {raw} {DISK_SIZE}; code=$?;"
        f" umount {raw.parent}/rootfs; exit $code",
        SUITE, "/dev/null", str(SOURCES),
    ]


def _explain(log: list[str], returncode: int) -> str:
    text = "\n".join(log)
    if "No space left on device" in text or "Could not allocate block" in text:
        return "not enough space to build the image (no space left on device)"
    if re.search(r"Failed to fetch|Could not connect|Could not resolve|Temporary failure", text):
        return (f"the apt sources are unreachable ({SOURCES}); the image is built from "
                "Debian's packages and needs them")
    if match := re.search(r"Unable to locate package (\S+)", text):
        return f"the apt sources have no package {match.group(1)}"
    tail = " / ".join(line for line in log[-6:] if line.strip())
    return f"the build failed (mmdebstrap exit {returncode}): {tail}"


def _run_mmdebstrap(command: list[str], progress: Progress) -> None:
    log: list[str] = []
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env={**os.environ, "LC_ALL": "C.UTF-8"})
    assert process.stdout is not None
    for line in process.stdout:
        log.append(line.rstrip())
        for marker, percent in STEPS:
            if marker in line:
                progress(percent, line.strip().removeprefix("I: ")[:120])
    if process.wait() != 0:
        raise BuildError(_explain(log, process.returncode))


def _take_kernel(out: Path) -> None:
    """The kernel and initrd the build installed, for direct kernel boot."""
    boot = out / "boot"
    for pattern, name in (("vmlinuz-*", "vmlinuz"), ("initrd.img-*", "initrd.img")):
        found = sorted(boot.glob(pattern))
        if not found:
            raise BuildError(f"the build installed no {pattern} in /boot")
        shutil.copyfile(found[-1], out / name)
    shutil.rmtree(boot, ignore_errors=True)


def build_desktop_image(out: Path, progress: Progress, key: str | None = None) -> BuiltImage:
    """Build into ``out`` (made if missing): disk.qcow2, vmlinuz, initrd.img, packages.txt."""
    out.mkdir(parents=True, exist_ok=True)
    _check_space(out)
    key = key or build_key()
    with tempfile.TemporaryDirectory(prefix="vdi-desktop-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)
        stage = _stage(work)
        raw_dir = work / "raw"
        raw_dir.mkdir(mode=0o777)
        raw_dir.chmod(0o777)  # written by the build's root, which may be a mapped user
        raw = raw_dir / "root.ext4"
        progress(1, "starting mmdebstrap")
        shutil.rmtree(out / "boot", ignore_errors=True)
        _run_mmdebstrap(_command(stage, out, raw), progress)
        _take_kernel(out)
        progress(88, "converting the root to qcow2")
        disk = out / "disk.qcow2"
        try:
            disks.convert_to_qcow2(raw, disk)
        except Exception as exc:
            raise BuildError(f"could not convert the image: {exc}") from exc
    for name in ("disk.qcow2", "vmlinuz", "initrd.img"):
        (out / name).chmod(0o644)
    (out / "build-key").write_text(key)
    progress(100, "built")
    return BuiltImage(disk, out / "vmlinuz", out / "initrd.img", CMDLINE,
                      (out / "packages.txt").read_text(), key)

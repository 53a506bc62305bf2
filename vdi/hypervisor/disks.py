"""qcow2 files: linked clones, blank disks, inspection. Wraps ``qemu-img``; no Django."""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vdi.folders import shared_folder
from vdi.hypervisor.errors import HypervisorError
from vdi.hypervisor.specs import DiskInfo

QEMU_IMG = "qemu-img"


def _run(args: list[str], what: str) -> str:
    try:
        result = subprocess.run(
            [QEMU_IMG, *args], capture_output=True, text=True, timeout=300, check=False
        )
    except FileNotFoundError:
        raise HypervisorError(f"{what}: qemu-img is not installed") from None
    except subprocess.TimeoutExpired:
        raise HypervisorError(f"{what}: qemu-img timed out", retryable=True) from None
    if result.returncode != 0:
        detail = result.stderr.strip() or result.stdout.strip()
        raise HypervisorError(f"{what}: {detail}")
    return result.stdout


def disk_info(path: Path) -> DiskInfo:
    """Format, sizes and backing file of an image file (raises if it is not one)."""
    if not path.is_file():
        raise HypervisorError(f"inspect {path}: no such file")
    out = _run(["info", "--output=json", "-U", str(path)], f"inspect {path}")
    data = json.loads(out)
    backing = data.get("full-backing-filename") or data.get("backing-filename")
    return DiskInfo(
        path=path,
        format=data["format"],
        virtual_size=int(data["virtual-size"]),
        actual_size=int(data.get("actual-size", 0)),
        backing_file=Path(backing) if backing else None,
        other_files=_other_files(path, data),
    )


def _other_files(path: Path, data: dict[str, Any]) -> tuple[Path, ...]:
    """Files besides itself an image reads: a qcow2's external data file, a vmdk's extents
    elsewhere (converting would copy them in: a host file could end up in an image)."""
    specific = (data.get("format-specific") or {}).get("data") or {}
    found = [specific["data-file"]] if specific.get("data-file") else []
    found += [e["filename"] for e in specific.get("extents", [])
              if e.get("filename") and Path(e["filename"]).resolve() != path.resolve()]
    return tuple(Path(f) for f in found)


def create_overlay(base: Path, path: Path) -> DiskInfo:
    """Create ``path`` as a qcow2 linked clone of ``base``; an existing file is an error."""
    if not base.is_file():
        raise HypervisorError(f"clone {base}: base image is missing")
    if path.exists():
        raise HypervisorError(f"clone {base}: {path} already exists")
    shared_folder(path.parent)
    _run(
        ["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(base), str(path)],
        f"clone {base}",
    )
    os.chmod(path, 0o660)
    return disk_info(path)


def create_blank(path: Path, size_bytes: int) -> DiskInfo:
    """Create an empty qcow2 file of ``size_bytes`` virtual size."""
    if path.exists():
        raise HypervisorError(f"create {path}: already exists")
    shared_folder(path.parent)
    _run(["create", "-q", "-f", "qcow2", str(path), str(size_bytes)], f"create {path}")
    os.chmod(path, 0o660)
    return disk_info(path)


def convert_to_qcow2(source: Path, target: Path, source_format: str = "raw") -> DiskInfo:
    shared_folder(target.parent)
    _run(
        ["convert", "-q", "-f", source_format, "-O", "qcow2", str(source), str(target)],
        f"convert {source}",
    )
    return disk_info(target)


IMPORTABLE = ("qcow2", "raw", "vmdk", "vdi")
_PERCENT = re.compile(rb"\((\d+(?:\.\d+)?)/100%\)")


def damage(path: Path, fmt: str) -> str | None:
    """Why the image file is damaged, or None when qemu-img (and, for VDI, its header's block
    count against the file's size) finds nothing wrong. A truncated file otherwise converts
    without a word, its missing blocks read as zeros."""
    if fmt == "vdi":
        return _vdi_truncated(path)
    if fmt == "raw":
        return None
    result = subprocess.run([QEMU_IMG, "check", "-f", fmt, "--output=json", str(path)],
                            capture_output=True, text=True, timeout=600, check=False)
    if result.returncode in (0, 3, 63):  # clean, leaked clusters only, no check for the format
        return None
    errors = [line.removeprefix("ERROR").strip(" :") for line in result.stderr.splitlines()
              if line.startswith(("ERROR", "qemu-img:"))]
    corruptions = json.loads(result.stdout).get("corruptions", 0) if result.stdout else 0
    summary = f"{corruptions} corruptions; " if corruptions else ""
    return f"qemu-img check: {summary}{'; '.join(errors[:2]) or 'failed'}"


def _vdi_truncated(path: Path) -> str | None:
    header = path.read_bytes()[:0x190] if path.stat().st_size >= 0x190 else b""
    if len(header) < 0x190:
        return "the VDI header is cut short"
    data_offset, = struct.unpack_from("<I", header, 0x158)
    block_size, = struct.unpack_from("<I", header, 0x178)
    allocated, = struct.unpack_from("<I", header, 0x184)
    needed = data_offset + allocated * block_size
    size = path.stat().st_size
    if size < needed:
        return (f"the file is truncated: its header counts {allocated} blocks of {block_size} "
                f"bytes ({needed} bytes), the file has {size}")
    return None


def convert_with_progress(source: Path, source_format: str, target: Path,
                          progress: Callable[[float], None]) -> DiskInfo:
    """Convert ``source`` into a standalone qcow2 (backing files flattened), reporting the
    percentage done as qemu-img prints it."""
    if source_format not in IMPORTABLE:
        raise HypervisorError(f"convert {source}: {source_format} files are not imported "
                              f"(only {', '.join(IMPORTABLE)})")
    shared_folder(target.parent)
    command = [QEMU_IMG, "convert", "-p", "-f", source_format, "-O", "qcow2", str(source),
               str(target)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    buffer = b""
    while chunk := os.read(process.stdout.fileno(), 4096):  # qemu-img redraws with \r
        buffer = (buffer + chunk)[-256:]
        if found := _PERCENT.findall(buffer):
            progress(float(found[-1]))
    error = process.stderr.read().decode(errors="replace").strip()
    if process.wait() != 0:
        target.unlink(missing_ok=True)
        raise HypervisorError(f"convert {source}: {error or 'qemu-img failed'}")
    return disk_info(target)


def create_ext4(target: Path, size: str, label: str) -> DiskInfo:
    """An empty ext4 file system of ``size`` (``1G``...) as a qcow2 file."""
    with tempfile.TemporaryDirectory(prefix="vdi-ext4-") as tmp:
        raw = Path(tmp) / "fs.ext4"
        try:
            subprocess.run(["mkfs.ext4", "-q", "-F", "-L", label, str(raw), size],
                           check=True, capture_output=True, text=True, timeout=120)
        except FileNotFoundError:
            raise HypervisorError("mkfs.ext4 is not installed (package e2fsprogs)") from None
        except subprocess.CalledProcessError as exc:
            raise HypervisorError(f"mkfs.ext4 {target}: {exc.stderr.strip()}") from None
        return convert_to_qcow2(raw, target)


def remove_disk(path: Path) -> bool:
    """Delete a disk file; True if it existed. Never follows into a backing file."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise HypervisorError(f"delete {path}: {exc.strerror}", retryable=True) from None
    return True


def sha256_file(path: Path, chunk_size: int = 4 * 1024 * 1024) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()

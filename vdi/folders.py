"""The data folders, defined once: name, setting, owner, mode and who must traverse them.

``scripts/lib.sh`` makes them at set-up (``python3 -m vdi.folders --user vdi-portal``, as root,
before any service starts), the container image the same way, and the tests' settings for
their own data folder: a folder a feature needs is never found missing by the feature.

The services run as the service user with umask 077 (their secrets are private), so a plain
``mkdir`` would make folders QEMU (user ``libvirt-qemu``) cannot enter: a guest then fails to
open its backing file. Folders QEMU uses are 0755; the others are the service user's alone.
No Django here: the set-up runs this with Debian's Python before the virtualenv exists.
"""

from __future__ import annotations

import argparse
import os
import pwd
from dataclasses import dataclass
from pathlib import Path

SHARED = 0o755  # QEMU (libvirt-qemu) and virtlogd traverse it; the service user writes it
PRIVATE = 0o700  # the service user's processes only (web, worker, beat)
RUN = 0o750  # the service user's home and beat's schedule


@dataclass(frozen=True)
class DataFolder:
    """One folder of the portal's data: its setting (``VDI_<setting>``, also the Django
    setting's name), its default name under ``VDI_DATA_DIR``, its mode, whether the service
    user owns it (else root), and who needs it."""

    setting: str  # empty: not configurable
    name: str
    mode: int
    service_owned: bool
    why: str

    def path(self, environ: os._Environ[str] | dict[str, str] = os.environ) -> Path:
        data = Path(environ.get("VDI_DATA_DIR", "/var/lib/vdi-portal"))
        if not self.setting:  # not configurable: always under the data folder
            return data / self.name
        return Path(environ.get(f"VDI_{self.setting}") or data / self.name)


FOLDERS = (
    DataFolder("IMAGE_DIR", "images", SHARED, True, "golden image versions, read by QEMU"),
    DataFolder("DISK_DIR", "disks", SHARED, True, "desktops' disks, opened by QEMU"),
    DataFolder("LOG_DIR", "logs", SHARED, True, "serial logs: virtlogd appends, the worker reads"),
    DataFolder("KERNEL_DIR", "kernel", SHARED, False, "the unpacked Debian kernel (set-up)"),
    DataFolder("IMAGE_CACHE_DIR", "cache", SHARED, True, "built images, read by QEMU"),
    DataFolder("BACKUP_DIR", "backups", SHARED, True, "backups: QEMU writes each disk's copy"),
    DataFolder("MEDIA_DIR", "media", SHARED, True, "installer ISOs, read by QEMU"),
    DataFolder("SPOOL_DIR", "spool", PRIVATE, True, "file transfers between web and worker"),
    DataFolder("THUMBNAIL_DIR", "thumbnails", PRIVATE, True, "written by workers, served by web"),
    DataFolder("RECORDING_DIR", "recordings", PRIVATE, True, "console recordings (web)"),
    DataFolder("SECRETS_DIR", "secrets", PRIVATE, True, "database, secret key, credentials"),
    DataFolder("", "run", RUN, True, "the service user's home, beat's schedule"),
)


def shared_folder(path: Path) -> Path:
    """Create ``path`` and any missing parents, each new one 0755; return it."""
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        folder.mkdir(exist_ok=True)
        folder.chmod(SHARED)
    return path


def service_user() -> str | None:
    """The service user (``VDI_SERVICE_USER``, default vdi-portal) when this process may give
    folders to it (root, and the user exists); else None (folders stay this process's)."""
    name = os.environ.get("VDI_SERVICE_USER", "vdi-portal")
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(name)
    except KeyError:
        return None
    return name


def make_folders(user: str | None, environ: dict[str, str] | None = None) -> list[Path]:
    """Make every data folder with its mode (and, when ``user`` is given, its owner): the
    data folder itself root's and 0755. Idempotent; returns the folders."""
    env = dict(os.environ if environ is None else environ)
    data = Path(env.get("VDI_DATA_DIR", "/var/lib/vdi-portal"))
    shared_folder(data)
    if os.geteuid() in (0, data.stat().st_uid):
        data.chmod(SHARED)
    uid = gid = -1
    if user is not None:
        entry = pwd.getpwnam(user)
        uid, gid = entry.pw_uid, entry.pw_gid
    made = []
    for folder in FOLDERS:
        path = folder.path(env)
        shared_folder(path.parent)
        path.mkdir(exist_ok=True)
        if os.geteuid() in (0, path.stat().st_uid):  # a service re-checking leaves root's be
            path.chmod(folder.mode)
        if folder.service_owned and user is not None:
            os.chown(path, uid, gid)
        made.append(path)
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--user", help="the service user that owns its folders")
    args = parser.parse_args()
    for path in make_folders(args.user):
        print(path)


if __name__ == "__main__":
    main()

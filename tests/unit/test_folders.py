"""The data folders come from one table (``vdi.folders.FOLDERS``): the settings name the same
paths, and the set-up makes each with its owner and mode, whatever the umask."""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

import pytest
from django.conf import settings

from vdi.folders import FOLDERS, PRIVATE, SHARED, make_folders

SERVICE_USER = "vdi-portal"


def test_every_configurable_folder_is_the_setting_of_its_name():
    for folder in FOLDERS:
        if folder.setting:
            assert Path(getattr(settings, folder.setting)) == folder.path(os.environ), \
                folder.setting


def test_the_features_folders_are_in_the_table():
    names = {folder.name for folder in FOLDERS}
    assert {"recordings", "thumbnails", "spool", "media", "backups", "images", "disks",
            "logs", "secrets"} <= names


def test_make_folders_gives_each_its_mode_under_a_private_umask(tmp_path):
    data = tmp_path / "data"
    old = os.umask(0o077)
    try:
        made = make_folders(None, {"VDI_DATA_DIR": str(data)})
    finally:
        os.umask(old)
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in made}
    assert stat.S_IMODE(data.stat().st_mode) == SHARED
    assert modes["disks"] == modes["backups"] == modes["media"] == SHARED, "QEMU enters them"
    assert modes["thumbnails"] == modes["recordings"] == modes["spool"] == PRIVATE
    assert modes["secrets"] == PRIVATE


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give folders away")
def test_make_folders_gives_the_service_users_folders_to_it(tmp_path):
    try:
        uid = pwd.getpwnam(SERVICE_USER).pw_uid
    except KeyError:
        pytest.skip(f"no user {SERVICE_USER} on this machine")
    data = tmp_path / "data"
    made = {p.name: p for p in make_folders(SERVICE_USER, {"VDI_DATA_DIR": str(data)})}
    assert data.stat().st_uid == 0
    assert made["kernel"].stat().st_uid == 0, "the set-up unpacks the kernel, as root"
    for name in ("disks", "backups", "media", "spool", "thumbnails", "recordings", "secrets"):
        assert made[name].stat().st_uid == uid, name

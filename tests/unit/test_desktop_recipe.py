"""The Debian desktop recipe without building it: its key follows the recipe and the package
versions, and a build that can't go on says why in words (no space, apt sources unreachable,
an unknown package, or the build's own last lines); the data disk's fstab line, the unit that
gives it to the desktop's user, and the links to it in the user's home."""

from __future__ import annotations

import configparser
import getpass
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from vdi.images.desktop import build


def test_the_build_key_follows_the_recipe_and_the_versions(monkeypatch):
    versions = "icewm 3.3.1-1"
    monkeypatch.setattr(build, "resolved_versions", lambda: versions)
    key = build.build_key()
    assert key == build.build_key() and len(key) == 64
    versions = "icewm 3.3.1-2"
    assert build.build_key() != key, "a newer package is another image"
    versions = "icewm 3.3.1-1"
    monkeypatch.setattr(build, "PACKAGES", (*build.PACKAGES, "htop"))
    assert build.build_key() != key, "another package is another image"


def test_the_resolved_versions_name_what_apt_would_install():
    versions = dict(line.split(" ", 1) for line in build.resolved_versions().splitlines())
    assert {"icewm", "qemu-guest-agent", "spice-vdagent"} <= versions.keys()


def test_not_enough_space_is_said_before_anything_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(build, "FREE_SPACE_NEEDED", 1024**5)
    with pytest.raises(build.BuildError, match=r"not enough space: \d+ MiB free"):
        build.build_desktop_image(tmp_path / "out", lambda p, s: None, "key")
    assert not (tmp_path / "out" / "disk.qcow2").exists()


def test_unreachable_apt_sources_are_named(tmp_path, monkeypatch):
    """A mirror on a loopback port nobody listens on: mmdebstrap's apt fails at once."""
    sources = tmp_path / "unreachable.sources"
    sources.write_text("Types: deb\nURIs: http://127.0.0.1:9/debian\nSuites: bookworm\n"
                       "Components: main\nSigned-By: /usr/share/keyrings/"
                       "debian-archive-keyring.gpg\n")
    monkeypatch.setattr(build, "SOURCES", sources)
    steps: list[str] = []
    with pytest.raises(build.BuildError, match="apt sources are unreachable") as refused:
        build.build_desktop_image(tmp_path / "out", lambda p, s: steps.append(s), "key")
    assert str(sources) in str(refused.value)
    assert steps and steps[0] == "starting mmdebstrap", "progress was reported"


@pytest.mark.parametrize(("log", "said"), [
    (["E: Unable to locate package no-such-thing"], "the apt sources have no package "
                                                    "no-such-thing"),
    (["mkfs.ext4: Could not allocate block in ext2 filesystem"], "no space left"),
    (["I: running apt-get update", "E: something else broke"],
     "the build failed (mmdebstrap exit 1): I: running apt-get update / E: something else"),
])
def test_a_failed_build_says_why(log, said):
    assert said in build._explain(log, 1)


def test_the_recipe_files_are_readable_by_the_builds_user_namespace(tmp_path: Path):
    stage = build._stage(tmp_path)
    for path in [stage, *stage.rglob("*")]:
        assert path.stat().st_mode & 0o005 == 0o005 if path.is_dir() else \
            path.stat().st_mode & 0o004, path


DATA_LINE = ("LABEL=vdi-data /data ext4 noauto,nofail,x-systemd.device-timeout=5s,"
             "x-systemd.wanted-by=dev-disk-by\\x2dlabel-vdi\\x2ddata.device 0 2")
DATA_DEVICE = "dev-disk-by\\x2dlabel-vdi\\x2ddata.device"
FSTAB_GENERATOR = Path("/lib/systemd/system-generators/systemd-fstab-generator")


def test_the_data_disk_is_mounted_when_it_shows_up_and_nothing_waits_for_it(tmp_path: Path):
    """The essential hook, run on an empty folder, writes the root's fstab with the data disk's
    line; systemd's own fstab generator reads it as the guest's will: the data disk's device
    unit wants /data (mounted whenever udev sees the disk, however late under TCG), and no boot
    job waits for it: local-fs.target neither wants nor is ordered after /data, so a desktop
    without the disk boots as fast."""
    root = tmp_path / "root"
    root.mkdir()
    subprocess.run(["sh", str(build.HERE / "hooks" / "essential.sh"), str(root)], check=True)
    assert (root / "etc/fstab").read_text().splitlines() == [
        "LABEL=vdiroot / ext4 errors=remount-ro,discard 0 1", DATA_LINE]
    assert (root / "data").is_dir(), "the mount point is in the image"
    if not FSTAB_GENERATOR.exists():
        pytest.skip(f"{FSTAB_GENERATOR} is not installed (package systemd)")
    out = tmp_path / "generated"
    out.mkdir()
    subprocess.run([str(FSTAB_GENERATOR), str(out), str(out), str(out)], check=True, env={
        "SYSTEMD_FSTAB": str(root / "etc/fstab"), "SYSTEMD_PROC_CMDLINE": "",
        "SYSTEMD_IN_INITRD": "0", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    mount = (out / "data.mount").read_text()
    assert "What=/dev/disk/by-label/vdi-data" in mount and "Type=ext4" in mount
    assert "Before=" not in mount, "local-fs.target is not ordered after /data"
    assert (out / f"{DATA_DEVICE}.wants" / "data.mount").exists(), "the disk brings /data"
    for target in ("local-fs.target.wants", "local-fs.target.requires"):
        assert not (out / target / "data.mount").exists(), f"no boot job: {target}"
    timeout = out / f"{DATA_DEVICE}.d" / "50-device-timeout.conf"
    assert "JobRunningTimeoutSec=5s" in timeout.read_text()


def data_owner_unit() -> configparser.ConfigParser:
    unit = configparser.ConfigParser(interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(build.HERE / "files/etc/systemd/system/vdi-data-owner.service")
    return unit


def test_the_mounted_data_disk_is_given_to_the_desktop_user(tmp_path: Path):
    """A oneshot pulled in by data.mount, after it, skipped unless /data is mounted, that
    nothing waits for; its command gives the file system's top folder (only it) to the user named in
    /etc/vdi/desktop-user, boot after boot (run here on stand-ins for both paths, giving
    them to the user running the test)."""
    unit = data_owner_unit()
    assert unit["Unit"]["After"] == "data.mount" and unit["Install"]["WantedBy"] == "data.mount"
    assert unit["Unit"]["ConditionPathIsMountPoint"] == "/data"
    assert unit["Unit"]["DefaultDependencies"] == "no" and "Before" not in unit["Unit"]
    assert unit["Service"]["Type"] == "oneshot"
    command = unit["Service"]["ExecStart"]
    assert "-R" not in command.split(), "only the top folder: the rest is the user's already"
    user_file, data = tmp_path / "desktop-user", tmp_path / "data"
    user_file.write_text(f"{getpass.getuser()}\n")
    data.mkdir()
    (data / "kept").write_text("x")
    script = shlex.split(command.replace("$$", "$"))
    assert script[:2] == ["/bin/sh", "-c"]
    script[2] = script[2].replace("/etc/vdi/desktop-user", str(user_file)).replace(
        "/data", str(data))
    for _ in range(2):  # idempotent: every boot
        subprocess.run(script, check=True)
        assert (data.stat().st_uid, data.stat().st_gid) == (os.getuid(), os.getgid())


def test_the_customize_hook_enables_the_owner_and_links_data_in_the_home():
    hook = (build.HERE / "hooks" / "customize.sh").read_text()
    assert re.search(r"systemctl enable .*\bvdi-data-owner\.service", hook)
    assert 'ln -s /data "$H/Data"' in hook and 'ln -s /data "$H/Desktop/Data"' in hook
    links = hook.index('ln -s /data "$H/Data"')
    assert links < hook.index('chown -R "$USER_NAME:$USER_NAME"'), "the user's own links"


def test_desktop_icons_start_their_program_on_a_double_click(tmp_path: Path):
    """PCManFM 1.3 (libfm) asks "Execute File" for a desktop entry double-clicked on the
    desktop unless quick_exec is on (tried under Xvfb: the user's libfm.conf with it starts
    xterm, Debian's /etc/xdg one without it shows the dialog). The hook's own lines, run on a
    copy of Debian's libfm.conf (abridged here), write the user's with quick_exec on and
    Debian's other settings kept."""
    hook = (build.HERE / "hooks" / "customize.sh").read_text()
    start = hook.index('mkdir -p "$H/.config/libfm"')
    lines = hook[start:].splitlines()[:3]
    assert lines[-1].startswith("grep -qx 'quick_exec=1'"), "the hook checks what it wrote"
    system = tmp_path / "root" / "etc" / "xdg" / "libfm" / "libfm.conf"
    system.parent.mkdir(parents=True)
    system.write_text("[config]\nsingle_click=0\nterminal=x-terminal-emulator %s\n\n"
                      "[ui]\nbig_icon_size=48\n")
    home = tmp_path / "home"
    subprocess.run(["sh", "-euc", "\n".join(lines)], check=True, env={
        "R": str(tmp_path / "root"), "H": str(home), "PATH": os.environ["PATH"]})
    libfm = configparser.ConfigParser(interpolation=None)
    libfm.read(home / ".config" / "libfm" / "libfm.conf")
    assert dict(libfm["config"]) == {"quick_exec": "1", "single_click": "0",
                                     "terminal": "x-terminal-emulator %s"}
    assert libfm["ui"]["big_icon_size"] == "48"
    assert hook.index(start_line := 'mkdir -p "$H/.config/libfm"') < hook.index(
        'chown -R "$USER_NAME:$USER_NAME"'), f"the user's own file ({start_line})"


def test_the_session_keeps_the_selections_in_step():
    """The session starts vdi-selections (the image carries Python's GTK bindings for it)."""
    hook = (build.HERE / "hooks" / "customize.sh").read_text()
    session = hook[hook.index('cat > "$R/usr/local/bin/vdi-session"'):]
    assert "/usr/local/bin/vdi-selections &" in session.split("\nEOT\n")[0]
    assert {"python3-gi", "gir1.2-gtk-3.0"} <= set(build.PACKAGES)
    script = build.HERE / "files" / "usr" / "local" / "bin" / "vdi-selections"
    assert script.read_text().startswith("#!/usr/bin/python3\n")

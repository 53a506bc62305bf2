"""Images from an installer ISO, without guests: install media (a path, or an upload with a
size limit and nothing left behind when refused), install desktops (a blank disk, the ISO on a
CD-ROM, CD first) on libvirt's test driver, and publishing a disk as an image version."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import TestCase
from django.urls import reverse
from lxml import etree

from tests.support import make_version, signed_in
from vdi.choices import DesktopStatus, OperationStatus
from vdi.hypervisor import get_driver
from vdi.hypervisor.disks import create_blank
from vdi.models import DeletedDesktop, Desktop, Host, ImageVersion, InstallMedia, Operation, Pool
from vdi.services import records
from vdi.services.desktops import create_desktop, request_action
from vdi.services.errors import AccessDenied, ServiceError
from vdi.services.installs import (
    InstallRequest,
    PublishRequest,
    create_install_desktop,
    publish,
    register_media,
    upload_media,
)
from vdi.worker import jobs

TEST_URI = "test:///default"


@pytest.fixture
def iso(tmp_path: Path) -> Path:
    """A real (tiny) ISO 9660 file, made with xorriso."""
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "README").write_text("installer\n")
    path = tmp_path / "installer.iso"
    subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-V", "DEBIAN_12", "-o", str(path),
                    str(tree)], check=True)
    return path


@pytest.fixture
def media_dir(tmp_path: Path, settings) -> Path:
    settings.MEDIA_DIR = folder = tmp_path / "media"
    return folder


@pytest.fixture
def test_host(db, tmp_path: Path, settings) -> Host:
    settings.IMAGE_DIR = tmp_path / "images"  # published versions go here
    return Host.objects.create(name=settings.HOST_NAME, libvirt_uri=TEST_URI,
                               domain_type="qemu", storage_dir=str(tmp_path / "disks"),
                               memory_capacity_mib=8192)


def chunks_of(path: Path, size: int = 4096):
    with path.open("rb") as f:
        while chunk := f.read(size):
            yield chunk


def run(action: str, desktop: Desktop) -> str:
    operation = Operation.objects.filter(desktop=desktop, kind=action).latest("created_at")
    return jobs.execute(action, desktop.pk, operation.pk)


# --- media ------------------------------------------------------------------------------------

def test_an_iso_on_the_host_is_registered_with_its_label(admin_user, iso):
    media = register_media(admin_user, "debian-12", iso)
    assert (media.path, media.volume_id, media.size_bytes) == (
        str(iso), "DEBIAN_12", iso.stat().st_size)
    assert not media.uploaded


@pytest.mark.parametrize(("path", "reason"), [
    ("relative.iso", "absolute path"),
    ("/nowhere/at/all.iso", "no such file"),
    ("/etc/hostname", "not an ISO 9660 image"),
])
def test_a_path_that_is_not_an_iso_is_refused_with_its_reason(admin_user, path, reason):
    with pytest.raises(ServiceError, match=reason):
        register_media(admin_user, "bad", Path(path))
    assert not InstallMedia.objects.exists()


def test_names_and_paths_are_unique_and_people_need_the_permission(admin_user, owner, iso):
    register_media(admin_user, "debian-12", iso)
    with pytest.raises(ServiceError, match="called debian-12 already"):
        register_media(admin_user, "debian-12", iso)
    with pytest.raises(ServiceError, match="registered already"):
        register_media(admin_user, "again", iso)
    with pytest.raises(ServiceError, match="lower-case"):
        register_media(admin_user, "Bad Name", iso)
    with pytest.raises(AccessDenied):
        register_media(owner, "mine", iso)


def test_an_upload_is_stored_read_only_and_goes_with_its_record(admin_user, iso, media_dir):
    media = upload_media(admin_user, "uploaded", chunks_of(iso), iso.stat().st_size)
    stored = Path(media.path)
    assert stored == media_dir / "uploaded.iso" and media.uploaded
    assert stored.read_bytes() == iso.read_bytes()
    assert stored.stat().st_mode & 0o777 == 0o444
    assert [p.name for p in media_dir.iterdir()] == ["uploaded.iso"], "no partial file left"
    with pytest.raises(ServiceError, match="called uploaded already"):
        upload_media(admin_user, "uploaded", chunks_of(iso), None)
    with TestCase.captureOnCommitCallbacks(execute=True):
        records.delete(admin_user, [media])
    assert not stored.exists()


def test_an_upload_over_the_limit_or_not_an_iso_leaves_nothing(admin_user, iso, media_dir,
                                                               settings):
    settings.MEDIA_UPLOAD_MAX_BYTES = iso.stat().st_size - 1
    with pytest.raises(ServiceError, match="the portal takes at most"):
        upload_media(admin_user, "big", chunks_of(iso), iso.stat().st_size)
    with pytest.raises(ServiceError, match=r"passed \d+ bytes"):  # a length that lied
        upload_media(admin_user, "big", chunks_of(iso), 10)
    settings.MEDIA_UPLOAD_MAX_BYTES = 10 * 1024**2
    with pytest.raises(ServiceError, match="not an ISO 9660 image"):
        upload_media(admin_user, "text", iter([b"hello\n" * 10_000]), None)
    with pytest.raises(ServiceError, match="empty"):
        upload_media(admin_user, "empty", iter([]), None)
    assert list(media_dir.iterdir()) == [] and not InstallMedia.objects.exists()


@pytest.mark.parametrize(("cause", "status", "words"), [
    ("permission", 500, "permission denied for the service user root on {media}/"),
    ("full", 507, "no space left on the file system holding {media}/"),
    ("not a folder", 500, "a part of {media}/.debian."),
])
def test_an_upload_the_media_folder_cant_take_says_why_in_words(
        admin_user, iso, media_dir, monkeypatch, cause, status, words):
    """Not "HTTP 500": the page's script shows the answer's words (vdi/upload.js)."""
    from vdi.services import installs

    if cause == "not a folder":
        media_dir.parent.mkdir(parents=True, exist_ok=True)
        media_dir.write_text("a file where the folder should be\n")
    else:
        code = errno.EACCES if cause == "permission" else errno.ENOSPC

        def refused(path: Path, chunks: Any) -> None:
            raise OSError(code, os.strerror(code), str(path))

        monkeypatch.setattr(installs, "_write", refused)
    upload = reverse("admin:vdi_installmedia_upload")
    answer = signed_in(admin_user).post(f"{upload}?name=debian", data=iso.read_bytes(),
                                        content_type="application/octet-stream")
    assert answer.status_code == status
    error = answer.json()["error"]
    assert error.startswith(f"The upload failed: the upload could not be stored in {media_dir} "
                            "(VDI_MEDIA_DIR): ")
    assert words.format(media=media_dir) in error
    assert not InstallMedia.objects.exists()
    if media_dir.is_dir():
        assert list(media_dir.iterdir()) == [], "no partial file left"


# --- install desktops -------------------------------------------------------------------------

def test_an_install_desktop_boots_its_iso_from_a_blank_disk(admin_user, iso, test_host):
    media = register_media(admin_user, "debian-12", iso)
    desktop = create_install_desktop(admin_user, InstallRequest(media, disk_gib=3))
    assert desktop.is_install and desktop.pool is None and desktop.owner == admin_user
    assert run("provision", desktop) == "done"
    desktop.refresh_from_db()
    assert desktop.status == DesktopStatus.RUNNING
    info = subprocess.run(["qemu-img", "info", "--output=json", desktop.disk_path],
                          capture_output=True, text=True, check=True).stdout
    assert '"virtual-size": 3221225472' in info and "backing" not in info
    xml = etree.fromstring(get_driver(TEST_URI).connection().lookupByName(
        desktop.domain_name).XMLDesc(0).encode())
    assert [b.get("dev") for b in xml.findall("os/boot")] == ["cdrom", "hd"]
    assert xml.find("os/kernel") is None, "it boots from its CD, not a kernel"
    cdrom = xml.find("devices/disk[@device='cdrom']")
    assert cdrom.find("source").get("file") == str(iso)
    assert cdrom.find("target").get("bus") == "sata" and cdrom.find("readonly") is not None
    assert xml.find("devices/interface") is None, "installers get no network here"
    assert str(desktop) == f"Install #{desktop.pk}"
    request_action(admin_user, desktop, "delete")
    assert run("delete", desktop) == "done"
    assert DeletedDesktop.objects.get(desktop_id=desktop.pk).image_version == \
        "installing debian-12"
    assert not Path(desktop.disk_path).exists()


@pytest.mark.parametrize(("change", "reason"), [
    ({"profile": "tiny"}, "install desktops use the profile"),
    ({"disk_gib": 0}, "the disk takes 1 to"),
    ({"memory_mib": 64}, "memory takes"),
])
def test_an_install_request_out_of_bounds_is_refused(admin_user, iso, test_host, change,
                                                     reason):
    media = register_media(admin_user, "debian-12", iso)
    with pytest.raises(ServiceError, match=reason):
        create_install_desktop(admin_user, InstallRequest(media, **change))
    assert not Desktop.objects.exists()


def test_only_those_who_may_install_make_install_desktops(admin_user, owner, iso, test_host):
    media = register_media(admin_user, "debian-12", iso)
    with pytest.raises(AccessDenied):
        create_install_desktop(owner, InstallRequest(media))


def test_an_install_desktop_has_no_image_to_reset_to(admin_user, iso, test_host):
    media = register_media(admin_user, "debian-12", iso)
    desktop = create_install_desktop(admin_user, InstallRequest(media, disk_gib=1))
    run("provision", desktop)
    desktop.refresh_from_db()
    for action in ("reset", "release"):
        with pytest.raises(ServiceError, match="no image to go back to"):
            request_action(admin_user, desktop, action)
    get_driver(TEST_URI).undefine(desktop.domain_name, (Path(desktop.disk_path),))


# --- publishing -------------------------------------------------------------------------------

def test_publishing_makes_a_read_only_standalone_version(admin_user, iso, test_host):
    media = register_media(admin_user, "debian-12", iso)
    desktop = create_install_desktop(admin_user, InstallRequest(media, disk_gib=1))
    run("provision", desktop)
    desktop.refresh_from_db()
    operation = publish(admin_user, desktop, PublishRequest(
        "installed", "from the ISO", readiness="agent", session_process="icewm",
        sysprep=False))
    assert Desktop.objects.get(pk=desktop.pk).status == DesktopStatus.PUBLISHING
    assert operation.params["image_name"] == "installed"
    assert run("publish", desktop) == "done"
    version = ImageVersion.objects.get(image__name="installed")
    assert (version.number, version.profile, version.readiness, version.session_process) == (
        1, "linux-desktop", "agent", "icewm")
    assert version.image.description == "from the ISO" and not version.kernel_path
    disk = Path(version.disk_path)
    assert disk.stat().st_mode & 0o777 == 0o444 and disk != Path(desktop.disk_path)
    assert Path(desktop.disk_path).exists(), "the install disk stays for another try"
    operation.refresh_from_db()
    assert (operation.status, operation.image) == (OperationStatus.SUCCEEDED, version.image)
    assert operation.step == f"published as {version}"
    assert Desktop.objects.get(pk=desktop.pk).status == DesktopStatus.STOPPED
    assert not list(settings.IMAGE_DIR.glob(".publish-*")), "no copy left behind"
    get_driver(TEST_URI).undefine(desktop.domain_name, (Path(desktop.disk_path),))


def test_a_failed_publish_leaves_the_desktop_stopped_and_no_copy(admin_user, iso, test_host,
                                                                settings):
    media = register_media(admin_user, "debian-12", iso)
    desktop = create_install_desktop(admin_user, InstallRequest(media, disk_gib=1))
    run("provision", desktop)
    desktop.refresh_from_db()
    make_version("taken", "/nonexistent/disk.qcow2")
    settings.IMAGE_DIR.joinpath("taken", "v2").mkdir(parents=True, exist_ok=True)
    publish(admin_user, desktop, PublishRequest("taken", sysprep=False))
    assert run("publish", desktop) == "failed"
    desktop.refresh_from_db()
    assert desktop.status == DesktopStatus.STOPPED
    assert desktop.last_error.startswith("Publishing failed:") and "v2 already exists" in \
        desktop.last_error
    assert not list(settings.IMAGE_DIR.glob(".publish-*"))
    settings.IMAGE_DIR.joinpath("taken", "v2").rmdir()
    get_driver(TEST_URI).undefine(desktop.domain_name, (Path(desktop.disk_path),))


def test_only_install_desktops_are_published_and_requests_are_checked(
        admin_user, owner, iso, test_host, tmp_path):
    create_blank(tmp_path / "plain.qcow2", 64 * 1024**2)
    version = make_version("plain", str(tmp_path / "plain.qcow2"))
    pool = Pool.objects.create(name="Plain", image=version.image, memory_mib=128)
    pool.users.add(admin_user)
    plain = create_desktop(admin_user, pool)
    run("provision", plain)
    plain.refresh_from_db()
    with pytest.raises(ServiceError, match="Only an install desktop"):
        publish(admin_user, plain, PublishRequest("copy"))
    media = register_media(admin_user, "debian-12", iso)
    desktop = create_install_desktop(admin_user, InstallRequest(media, disk_gib=1))
    for request, reason in ((PublishRequest("Bad Name"), "lower-case"),
                            (PublishRequest("ok", session_process="icewm"), "agent readiness"),
                            (PublishRequest("ok", readiness="agent", session_process="a b"),
                             "not a process name")):
        with pytest.raises(ServiceError, match=reason):
            publish(admin_user, desktop, request)
    with pytest.raises(AccessDenied):
        publish(owner, desktop, PublishRequest("ok"))
    driver = get_driver(TEST_URI)
    driver.undefine(plain.domain_name, (Path(plain.disk_path),))


# --- the admin's pages ------------------------------------------------------------------------

def test_the_admin_registers_uploads_installs_and_publishes(admin_user, iso,
                                                            media_dir, empty_queue):
    client = signed_in(admin_user)
    add = reverse("admin:vdi_installmedia_add")
    refused = client.post(add, {"name": "etc", "path": "/etc/hostname"})
    assert "not an ISO 9660 image" in refused.content.decode()
    client.post(add, {"name": "by-path", "path": str(iso)}, follow=True)
    assert InstallMedia.objects.get(name="by-path").volume_id == "DEBIAN_12"

    upload = reverse("admin:vdi_installmedia_upload")
    assert "Upload an ISO" in client.get(reverse("admin:vdi_installmedia_changelist")) \
        .content.decode()
    assert client.get(upload).status_code == 200
    answer = client.post(f"{upload}?name=uploaded", data=iso.read_bytes(),
                         content_type="application/octet-stream")
    assert answer.status_code == 200 and answer.json()["volume_id"] == "DEBIAN_12"
    bad = client.post(f"{upload}?name=text", data=b"not an iso",
                      content_type="application/octet-stream")
    assert bad.status_code == 400 and "not an ISO 9660" in bad.json()["error"]

    media = InstallMedia.objects.get(name="uploaded")
    made = client.post(reverse("admin:vdi_installmedia_install", args=[media.pk]), {
        "profile": "linux-desktop", "disk_gib": 2, "memory_mib": 1024, "vcpus": 1})
    assert made.status_code == 302 and made["Location"] == reverse("desktop-list")
    desktop = Desktop.objects.get(install_media=media)
    assert (desktop.owner, desktop.install_disk_gib) == (admin_user, 2)
    rows = client.get(reverse("desktop-list")).content.decode()
    assert "installing from uploaded" in rows

    Desktop.objects.filter(pk=desktop.pk).update(status=DesktopStatus.STOPPED)
    page = reverse("admin:vdi_desktop_publish", args=[desktop.pk])
    assert page in client.get(reverse("desktop-list")).content.decode()
    wrong = client.post(page, {"image_name": "Bad", "readiness": "none"})
    assert "lower-case" in wrong.content.decode()
    done = client.post(page, {"image_name": "installed", "readiness": "none", "sysprep": "on"})
    assert done.status_code == 302
    operation = Operation.objects.get(desktop=desktop, kind="publish")
    assert operation.params["sysprep"] is True
    assert Desktop.objects.get(pk=desktop.pk).status == DesktopStatus.PUBLISHING


def test_the_install_desktops_console_is_its_owners_while_they_may_install(
        admin_user, iso, test_host):
    from django.contrib.auth.models import Permission

    from vdi.services.access import ConsoleMode, console_mode, owner_may_keep

    installer = type(admin_user).objects.create_user("installer", password="x")
    installer.user_permissions.add(Permission.objects.get(codename="install_from_media"))
    media = register_media(admin_user, "debian-12", iso)
    desktop = create_install_desktop(installer, InstallRequest(media, disk_gib=1))
    assert console_mode(installer, desktop) is ConsoleMode.INTERACTIVE
    assert owner_may_keep(installer, desktop)
    installer.user_permissions.clear()
    installer = type(installer).objects.get(pk=installer.pk)  # permissions are cached
    assert not owner_may_keep(installer, desktop), "an open console closes (access revoked)"

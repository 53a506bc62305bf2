"""Maintenance desktops, without guests: opened from an image's current version (a linked
clone, no pool) on libvirt's test driver, the rules that refuse one, the database's check of
the three kinds of desktop, publishing as the image's next version (notes, its base's boot
files, a rollout started in the pools following the image), and the admin's pages."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from lxml import etree

from tests.support import signed_in
from vdi.choices import DesktopStatus, ImageStatus, OperationStatus, RolloutStatus
from vdi.hypervisor import get_driver
from vdi.hypervisor.disks import create_blank
from vdi.models import (
    AuditEvent,
    Desktop,
    GoldenImage,
    Host,
    ImageVersion,
    Operation,
    Pool,
    Rollout,
)
from vdi.services.desktops import create_desktop, request_action
from vdi.services.errors import AccessDenied, ServiceError
from vdi.services.installs import PublishRequest, publish
from vdi.services.maintenance import (
    NOTES_MAX,
    MaintenanceRequest,
    NextVersionRequest,
    open_maintenance_desktop,
    publish_next_version,
)
from vdi.worker import jobs
from vdi.worker.specs import nics_of

TEST_URI = "test:///default"


@pytest.fixture
def test_host(db, tmp_path: Path, settings) -> Host:
    settings.IMAGE_DIR = tmp_path / "images"
    return Host.objects.create(name=settings.HOST_NAME, libvirt_uri=TEST_URI,
                               domain_type="qemu", storage_dir=str(tmp_path / "disks"),
                               memory_capacity_mib=8192)


def version_of(image: str, folder: Path, number: int, **fields: object) -> ImageVersion:
    """A version with a real (blank) qcow2 disk, a kernel and an initrd (direct kernel boot)."""
    folder.mkdir(parents=True, exist_ok=True)
    disk = folder / f"{image}-v{number}.qcow2"
    create_blank(disk, 64 * 1024**2)
    kernel, initrd = folder / f"vmlinuz-{number}", folder / f"initrd-{number}"
    kernel.write_bytes(b"kernel %d\n" % number)
    initrd.write_bytes(b"initrd %d\n" % number)
    found, _ = GoldenImage.objects.get_or_create(name=image)
    return ImageVersion.objects.create(
        image=found, number=number, disk_path=str(disk), size_bytes=1, virtual_size_bytes=1,
        sha256=f"{image}-{number}".ljust(64, "0"), kernel_path=str(kernel),
        initrd_path=str(initrd), cmdline="root=/dev/vda rw console=ttyS0",
        readiness="serial", **fields)


@pytest.fixture
def base(test_host, tmp_path: Path) -> ImageVersion:
    """tiny v2 is the current version (v1 is older)."""
    version_of("tiny", tmp_path / "src", 1)
    return version_of("tiny", tmp_path / "src", 2)


def run(action: str, desktop: Desktop) -> str:
    operation = Operation.objects.filter(desktop=desktop, kind=action).latest("created_at")
    return jobs.execute(action, desktop.pk, operation.pk)


def opened(user, image: GoldenImage) -> Desktop:
    desktop = open_maintenance_desktop(user, MaintenanceRequest(image, memory_mib=256, vcpus=1))
    assert run("provision", desktop) == "done"
    desktop.refresh_from_db()
    return desktop


def undefine(desktop: Desktop) -> None:
    get_driver(TEST_URI).undefine(desktop.domain_name, (Path(desktop.disk_path),))


# --- opening one ------------------------------------------------------------------------------

def test_a_maintenance_desktop_is_a_linked_clone_of_the_current_version(administrator, base):
    desktop = opened(administrator, base.image)
    assert desktop.is_maintenance and not desktop.is_install
    assert (desktop.pool, desktop.image_version, desktop.owner) == (None, base, administrator)
    assert desktop.status == DesktopStatus.RUNNING and str(desktop) == f"Maintenance #{desktop.pk}"
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", desktop.disk_path],
                                     capture_output=True, text=True, check=True).stdout)
    assert info["backing-filename"] == base.disk_path, "a copy-on-write clone of v2"
    xml = etree.fromstring(get_driver(TEST_URI).connection().lookupByName(
        desktop.domain_name).XMLDesc(0).encode())
    assert xml.findtext("os/kernel") == base.kernel_path
    assert [b.get("dev") for b in xml.findall("os/boot")] == ["hd"]
    assert xml.find("devices/disk[@device='cdrom']") is None
    event = AuditEvent.objects.get(action="desktop.create", target_id=str(desktop.pk))
    assert event.actor == administrator and event.details["maintenance_of"] == "tiny v2"
    for action in ("reset", "release"):
        with pytest.raises(ServiceError, match="keeps its changes until it is published"):
            request_action(administrator, desktop, action)
    undefine(desktop)


def test_a_maintenance_desktop_reaches_out_through_its_hosts_default_network(administrator,
                                                                            base, test_host):
    """To fetch updates: the host's default network when it is NAT or a bridge, else none
    (an isolated network is a pool's)."""
    desktop = open_maintenance_desktop(administrator, MaintenanceRequest(base.image))
    assert desktop.mac_address, "a MAC of its own, kept across boots"
    assert nics_of(desktop) == (), "the host offers no default network"
    for mode, name in (("nat", "default"), ("bridge", "br0")):
        Host.objects.filter(pk=test_host.pk).update(network_mode=mode, network_name=name)
        desktop = Desktop.objects.select_related("host").get(pk=desktop.pk)
        (nic,) = nics_of(desktop)
        assert (nic.mac, nic.network or nic.bridge) == (desktop.mac_address, name)


def test_opening_is_refused_with_its_reason_and_makes_nothing(administrator, operator, owner,
                                                             base, tmp_path):
    image = base.image
    for person in (owner, operator):  # neither may make images
        with pytest.raises(AccessDenied):
            open_maintenance_desktop(person, MaintenanceRequest(image))
    with pytest.raises(ServiceError, match="memory takes"):
        open_maintenance_desktop(administrator, MaintenanceRequest(image, memory_mib=64))
    retired = version_of("retired", tmp_path / "src", 1, status=ImageStatus.RETIRED)
    with pytest.raises(ServiceError, match="retired has no ready version"):
        open_maintenance_desktop(administrator, MaintenanceRequest(retired.image))
    assert not Desktop.objects.exists()

    first = opened(administrator, image)
    with pytest.raises(ServiceError, match=rf"Maintenance #{first.pk} \(of administrator\) is "
                                           "already a maintenance desktop of tiny v2"):
        open_maintenance_desktop(administrator, MaintenanceRequest(image))
    assert Desktop.objects.count() == 1
    undefine(first)


def test_its_console_is_its_owners_while_they_may_make_images(administrator, outsider, base):
    from django.contrib.auth.models import Permission

    from vdi.services.access import ConsoleMode, console_mode, owner_may_keep

    maker = type(administrator).objects.create_user("maker", password="x")
    maker.user_permissions.add(Permission.objects.get(codename="install_from_media"))
    desktop = opened(maker, base.image)
    console = reverse("desktop-console", args=[desktop.pk])
    assert signed_in(maker).get(console).status_code == 200, "the same console page"
    assert signed_in(outsider).get(console).status_code == 404
    assert console_mode(maker, desktop) is ConsoleMode.INTERACTIVE
    assert owner_may_keep(maker, desktop)
    maker.user_permissions.clear()
    maker = type(maker).objects.get(pk=maker.pk)  # permissions are cached
    assert not owner_may_keep(maker, desktop), "an open console closes (access revoked)"
    undefine(desktop)


def test_the_database_takes_the_three_kinds_of_desktop_only(base, test_host, owner):
    pool = Pool.objects.create(name="Tiny", image=base.image)
    common: dict[str, Any] = {"host": test_host, "vcpus": 1, "memory_mib": 256}
    Desktop.objects.create(domain_name="from-a-pool", pool=pool, image_version=base, **common)
    Desktop.objects.create(domain_name="maintenance", image_version=base, owner=owner, **common)
    refused: list[dict[str, Any]] = [
        {"domain_name": "nothing"},  # no pool, no image, no installer
        {"domain_name": "pool-no-image", "pool": pool},
        {"domain_name": "maintenance-with-hardware", "image_version": base,
         "install_profile": "linux-desktop"},
        {"domain_name": "maintenance-with-a-disk-size", "image_version": base,
         "install_disk_gib": 4},
    ]
    for fields in refused:
        with pytest.raises(IntegrityError), transaction.atomic():
            Desktop.objects.create(**common, **fields)
    assert set(Desktop.objects.values_list("domain_name", flat=True)) == {
        "from-a-pool", "maintenance"}


# --- publishing -------------------------------------------------------------------------------

def test_publishing_makes_the_next_version_and_the_pools_roll_it_out(administrator, base,
                                                                     test_host):
    pool = Pool.objects.create(name="Tiny", image=base.image)  # follows the latest version
    desktop = opened(administrator, base.image)
    operation = publish_next_version(administrator, desktop, NextVersionRequest(
        "curl 8.5 installed", sysprep=False))
    assert Desktop.objects.get(pk=desktop.pk).status == DesktopStatus.PUBLISHING
    assert run("publish", desktop) == "done"

    made = ImageVersion.objects.get(image=base.image, number=3)
    assert made.notes == "curl 8.5 installed"
    assert (made.profile, made.readiness, made.cmdline) == (
        base.profile, base.readiness, base.cmdline)
    assert Path(made.kernel_path).read_bytes() == b"kernel 2\n"
    assert Path(made.initrd_path).read_bytes() == b"initrd 2\n"
    assert Path(base.kernel_path).exists(), "the base keeps its own kernel"
    disk = Path(made.disk_path)
    info = subprocess.run(["qemu-img", "info", str(disk)], capture_output=True, text=True,
                          check=True).stdout
    assert "backing file" not in info and disk.stat().st_mode & 0o777 == 0o444
    operation.refresh_from_db()
    assert (operation.status, operation.step) == (OperationStatus.SUCCEEDED,
                                                  "published as tiny v3")
    desktop.refresh_from_db()
    assert desktop.status == DesktopStatus.STOPPED and desktop.image_version == base
    assert not list(settings.IMAGE_DIR.glob(".*")), "no copy left behind"
    rollout = Rollout.objects.get(pool=pool)
    assert (rollout.from_version, rollout.to_version, rollout.status) == (
        base, made, RolloutStatus.CANARY)

    with pytest.raises(ServiceError, match=r"tiny has a newer version \(tiny v3\) than the "
                                           "tiny v2 this desktop was made from"):
        publish_next_version(administrator, desktop, NextVersionRequest())
    undefine(desktop)


def test_a_failed_publish_leaves_the_desktop_stopped_and_no_file(administrator, base):
    desktop = opened(administrator, base.image)
    taken = settings.IMAGE_DIR / "tiny" / "v3"
    taken.mkdir(parents=True)
    publish_next_version(administrator, desktop, NextVersionRequest("x", sysprep=False))
    assert run("publish", desktop) == "failed"
    desktop.refresh_from_db()
    assert desktop.status == DesktopStatus.STOPPED
    assert desktop.last_error.startswith("Publishing failed:")
    assert "v3 already exists" in desktop.last_error
    assert [p.name for p in settings.IMAGE_DIR.iterdir()] == ["tiny"], "no copy left"
    assert list(taken.iterdir()) == []
    assert not ImageVersion.objects.filter(number=3).exists()
    taken.rmdir()
    publish_next_version(administrator, desktop, NextVersionRequest("again", sysprep=False))
    assert run("publish", desktop) == "done", "tried again once the cause is gone"
    undefine(desktop)


def test_publishing_is_refused_with_its_reason(administrator, operator, base, test_host):
    pool = Pool.objects.create(name="Tiny", image=base.image, memory_mib=128)
    pool.users.add(administrator)
    plain = create_desktop(administrator, pool)
    with pytest.raises(ServiceError, match="Only a maintenance desktop"):
        publish_next_version(administrator, plain, NextVersionRequest())
    desktop = open_maintenance_desktop(administrator, MaintenanceRequest(base.image))
    with pytest.raises(ServiceError, match="published as its image's next version"):
        publish(administrator, desktop, PublishRequest("elsewhere"))
    with pytest.raises(AccessDenied):
        publish_next_version(operator, desktop, NextVersionRequest())
    with pytest.raises(ServiceError, match=f"at most {NOTES_MAX} characters"):
        publish_next_version(administrator, desktop, NextVersionRequest("x" * (NOTES_MAX + 1)))
    Desktop.objects.filter(pk=desktop.pk).update(status=DesktopStatus.STOPPED)
    publish_next_version(administrator, desktop, NextVersionRequest())
    with pytest.raises(ServiceError, match="is being published already"):
        publish_next_version(administrator, desktop, NextVersionRequest())
    assert Operation.objects.filter(desktop=desktop, kind="publish").count() == 1


# --- the admin's pages ------------------------------------------------------------------------

def test_the_admin_opens_and_publishes_a_maintenance_desktop(administrator, base):
    client = signed_in(administrator)
    image_page = client.get(reverse("admin:vdi_goldenimage_change", args=[base.image.pk]))
    opener = reverse("admin:vdi_goldenimage_maintain", args=[base.image.pk])
    assert opener in image_page.content.decode()
    form = client.get(opener).content.decode()
    assert "made from its current version, tiny v2" in form
    made = client.post(opener, {"memory_mib": 512, "vcpus": 1})
    assert made.status_code == 302 and made["Location"] == reverse("desktop-list")
    desktop = Desktop.objects.get(pool__isnull=True)
    assert (desktop.image_version, desktop.owner, desktop.memory_mib) == (
        base, administrator, 512)
    again = client.post(opener, {"memory_mib": 512, "vcpus": 1}).content.decode()
    assert "already a maintenance desktop of tiny v2" in again
    assert f"Maintenance #{desktop.pk}" in client.get(image_page.request["PATH_INFO"]) \
        .content.decode()

    Desktop.objects.filter(pk=desktop.pk).update(status=DesktopStatus.STOPPED)
    rows = client.get(reverse("desktop-list")).content.decode()
    publisher = reverse("admin:vdi_desktop_publish", args=[desktop.pk])
    assert "maintenance of tiny v2" in rows and publisher in rows
    assert "Publish as the next version" in rows
    page = client.get(publisher).content.decode()
    assert "Publish Maintenance" in page and "next version of tiny" in page
    assert 'name="image_name"' not in page, "its image is its own"
    done = client.post(publisher, {"notes": "fonts added", "sysprep": "on"})
    assert done.status_code == 302
    operation = Operation.objects.get(desktop=desktop, kind="publish")
    assert (operation.params["image_name"], operation.params["notes"]) == ("tiny",
                                                                           "fonts added")
    assert operation.params["sysprep"] is True
    assert Desktop.objects.get(pk=desktop.pk).status == DesktopStatus.PUBLISHING
    busy = client.post(publisher, {"notes": "twice"}).content.decode()
    assert "is being published already" in busy


def test_the_pages_refuse_those_who_may_not_and_say_why(administrator, operator, outsider,
                                                        base, test_host, tmp_path):
    opener = reverse("admin:vdi_goldenimage_maintain", args=[base.image.pk])
    desktop = open_maintenance_desktop(administrator, MaintenanceRequest(base.image))
    publisher = reverse("admin:vdi_desktop_publish", args=[desktop.pk])
    staff, other = signed_in(operator), signed_in(outsider)
    for page, data in ((opener, {"memory_mib": 512, "vcpus": 1}), (publisher, {"notes": "x"})):
        assert staff.post(page, data).status_code == 403, "an operator may not make images"
        assert other.post(page, data)["Location"].startswith(reverse("admin:login"))
    assert Desktop.objects.count() == 1
    assert not Operation.objects.filter(kind="publish").exists()
    retired = version_of("retired", tmp_path / "src", 1, status=ImageStatus.RETIRED)
    refused = signed_in(administrator).get(
        reverse("admin:vdi_goldenimage_maintain", args=[retired.image.pk]), follow=True)
    assert "Retired has no ready version to start a maintenance desktop from" in \
        refused.content.decode()

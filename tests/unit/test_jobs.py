"""Worker jobs against libvirt's test:///default driver: idempotent, and clean on failure."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings

from tests.support import make_version
from vdi.choices import DesktopStatus, OperationStatus
from vdi.hypervisor import HypervisorError, PowerState, get_driver
from vdi.hypervisor.disks import create_blank
from vdi.models import DeletedDesktop, Desktop, Host, ImageVersion, Operation, Pool
from vdi.services.desktops import create_desktop, request_action
from vdi.worker import jobs

TEST_URI = "test:///default"


@pytest.fixture
def base_disk(tmp_path: Path) -> Path:
    path = tmp_path / "base.qcow2"
    create_blank(path, 64 * 1024 * 1024)
    return path


@pytest.fixture
def test_pool(db, tmp_path: Path, base_disk: Path, owner) -> Pool:
    Host.objects.create(name=settings.HOST_NAME, libvirt_uri=TEST_URI, domain_type="qemu",
                        storage_dir=str(tmp_path / "disks"), memory_capacity_mib=4096)
    version = make_version("jobs", str(base_disk))
    pool = Pool.objects.create(name="Jobs", image=version.image, memory_mib=128)
    pool.users.add(owner)
    return pool


def run(action: str, desktop: Desktop) -> str:
    operation = Operation.objects.filter(desktop=desktop, kind=action).latest("created_at")
    return jobs.execute(action, desktop.pk, operation.pk)


def test_provision_then_duplicate_does_nothing(owner, test_pool):
    desktop = create_desktop(owner, test_pool)
    assert run("provision", desktop) == "done"
    desktop.refresh_from_db()
    assert desktop.status == DesktopStatus.RUNNING
    driver = get_driver(TEST_URI)
    assert driver.state(desktop.domain_name) == PowerState.RUNNING
    assert Path(desktop.disk_path).exists()

    assert run("provision", desktop) == "skipped"
    names = [d.name for d in driver.list_domains() if d.name == desktop.domain_name]
    assert names == [desktop.domain_name]
    driver.undefine(desktop.domain_name, (Path(desktop.disk_path),))


def test_stop_start_restart_delete(owner, test_pool):
    desktop = create_desktop(owner, test_pool)
    run("provision", desktop)
    driver = get_driver(TEST_URI)
    for action, final, power in [
        ("stop", DesktopStatus.STOPPED, PowerState.SHUTOFF),
        ("start", DesktopStatus.RUNNING, PowerState.RUNNING),
        ("restart", DesktopStatus.RUNNING, PowerState.RUNNING),
    ]:
        request_action(owner, desktop, action)
        assert run(action, desktop) == "done"
        desktop.refresh_from_db()
        assert desktop.status == final
        assert driver.state(desktop.domain_name) == power
    request_action(owner, desktop, "delete")
    assert run("delete", desktop) == "done"
    assert not Desktop.objects.filter(pk=desktop.pk).exists()
    assert DeletedDesktop.objects.filter(desktop_id=desktop.pk).exists()
    assert driver.lookup(desktop.domain_name) is None
    assert not Path(desktop.disk_path).exists()


FACTS = {"os": "Debian GNU/Linux 12", "hostname": "jobs-1", "addresses": ["10.0.0.9"],
         "users": ["user"]}


def test_a_stopped_desktop_forgets_what_its_agent_said(owner, test_pool):
    desktop = create_desktop(owner, test_pool)
    run("provision", desktop)
    Desktop.objects.filter(pk=desktop.pk).update(guest_facts=FACTS)
    desktop.refresh_from_db()
    assert desktop.guest.users == ("user",), "said while it runs"
    request_action(owner, desktop, "stop")
    assert run("stop", desktop) == "done"
    desktop.refresh_from_db()
    assert desktop.status == DesktopStatus.STOPPED
    assert desktop.guest_facts == {} and not desktop.guest, "nobody is signed in any more"
    get_driver(TEST_URI).undefine(desktop.domain_name, (Path(desktop.disk_path),))


def test_start_recreates_a_missing_domain(owner, test_pool):
    desktop = create_desktop(owner, test_pool)
    run("provision", desktop)
    driver = get_driver(TEST_URI)
    driver.undefine(desktop.domain_name)  # behind the portal's back
    Desktop.objects.filter(pk=desktop.pk).update(status=DesktopStatus.STOPPED)
    request_action(owner, desktop, "start")
    assert run("start", desktop) == "done"
    assert driver.state(desktop.domain_name) == PowerState.RUNNING
    driver.undefine(desktop.domain_name, (Path(desktop.disk_path),))


def test_failed_provisioning_removes_what_it_made(owner, test_pool, base_disk):
    desktop = create_desktop(owner, test_pool)
    base_disk.unlink()  # the image file vanished
    assert run("provision", desktop) == "failed"
    desktop.refresh_from_db()
    assert desktop.status == DesktopStatus.ERROR
    assert "base image is missing" in desktop.error_detail, "the raw cause is for operators"
    assert desktop.last_error.startswith("The provision failed on host")
    assert get_driver(TEST_URI).lookup(desktop.domain_name) is None
    assert not Path(desktop.disk_path).exists()
    operation = Operation.objects.get(desktop=desktop)
    assert operation.status == OperationStatus.FAILED
    assert operation.finished_at is not None


def test_an_unreachable_host_is_waited_for_then_the_error_says_what_to_do(
        owner, test_pool, settings):
    settings.HOST_OUTAGE_WINDOW = 60
    desktop = create_desktop(owner, test_pool)
    Host.objects.update(libvirt_uri="qemu+unix:///system?socket=/nonexistent/sock")
    with pytest.raises(HypervisorError) as err:
        run("provision", desktop)
    assert err.value.retryable and err.value.unreachable
    desktop.refresh_from_db()
    assert desktop.status == DesktopStatus.PROVISIONING, "still claimed while it waits"
    operation = Operation.objects.get(desktop=desktop)
    assert operation.status == OperationStatus.QUEUED and operation.waiting_since is not None
    assert operation.step.startswith(f"Waiting for its host {settings.HOST_NAME} to come back")
    assert "/nonexistent/sock" in operation.detail, "the raw cause is for operators"
    Operation.objects.filter(pk=operation.pk).update(
        waiting_since=operation.waiting_since - timedelta(seconds=61))
    assert run("provision", desktop) == "failed", "past the window it fails"
    desktop.refresh_from_db()
    assert desktop.status == DesktopStatus.ERROR
    assert desktop.last_error.startswith(
        f"Its host {settings.HOST_NAME} could not be reached for 1 min")
    assert "ask an administrator" in desktop.last_error
    assert "/nonexistent" not in desktop.last_error, "no socket path for the user"
    assert "/nonexistent/sock" in desktop.error_detail


def test_reset_moves_to_the_newest_version_and_keeps_the_data_disk(owner, test_pool, tmp_path):
    test_pool.persistence = "persistent"
    test_pool.save()
    desktop = create_desktop(owner, test_pool)
    run("provision", desktop)
    desktop.refresh_from_db()
    data = Path(desktop.data_disk_path)
    assert data.exists() and desktop.data_disk_path.endswith("-data.qcow2")
    assert disks_info_backing(desktop.disk_path) != tmp_path / "newer.qcow2"

    newer = tmp_path / "newer.qcow2"
    create_blank(newer, 64 * 1024 * 1024)
    version = make_version("jobs", str(newer))
    request_action(owner, desktop, "reset")
    assert run("reset", desktop) == "done"
    desktop.refresh_from_db()
    assert desktop.image_version == version
    assert disks_info_backing(desktop.disk_path) == newer, "a fresh overlay on the new version"
    assert data.exists(), "the data disk survives"
    get_driver(TEST_URI).undefine(desktop.domain_name, (Path(desktop.disk_path), data))


def disks_info_backing(path: str) -> Path | None:
    from vdi.hypervisor.disks import disk_info

    return disk_info(Path(path)).backing_file


@pytest.mark.django_db(transaction=True)
def test_the_same_task_twice_at_once_makes_one_domain_and_one_disk(owner, test_pool):
    import threading

    from django.db import connections

    desktop = create_desktop(owner, test_pool)
    operation = Operation.objects.get(desktop=desktop)
    barrier, outcomes = threading.Barrier(2), []

    def deliver() -> None:
        barrier.wait()
        try:
            outcomes.append(jobs.execute("provision", desktop.pk, operation.pk))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["done", "skipped"]
    desktop.refresh_from_db()
    assert desktop.status == DesktopStatus.RUNNING
    driver = get_driver(TEST_URI)
    assert [d.name for d in driver.list_domains() if d.name == desktop.domain_name] == [
        desktop.domain_name]
    assert [p.name for p in Path(desktop.disk_path).parent.iterdir()] == [
        Path(desktop.disk_path).name]
    driver.undefine(desktop.domain_name, (Path(desktop.disk_path),))


def test_a_delivery_for_a_desktop_that_is_gone_does_nothing(db):
    assert jobs.execute("provision", 987654, 1) == "skipped"


def test_a_linux_desktop_gets_its_network_seed_and_a_unique_mac(owner, test_pool):
    """A pool with an isolated network: the worker makes the pool's network on the host, the
    desktop's NIC has its own MAC on it, and its cloud-init seed names it."""
    import subprocess

    from vdi.hypervisor.network_xml import pool_network
    from vdi.worker.specs import hostname, seed_path

    ImageVersion.objects.filter(image=test_pool.image).update(
        profile="linux-desktop", readiness="agent")
    test_pool.network_mode, test_pool.max_per_user = "isolated", 2
    test_pool.save()
    Host.objects.update(isolated_networks=True)
    first, second = create_desktop(owner, test_pool), create_desktop(owner, test_pool)
    assert first.mac_address.startswith("52:54:00:") and first.mac_address != second.mac_address
    assert run("provision", first) == "done"
    driver = get_driver(TEST_URI)
    network = driver.connection().networkLookupByName(pool_network(test_pool.pk).name)
    assert network.isActive()
    xml = driver.connection().lookupByName(first.domain_name).XMLDesc(0)
    assert first.mac_address in xml and pool_network(test_pool.pk).name in xml
    seed = seed_path(first)
    listing = subprocess.run(["mdir", "-i", str(seed), "::"], capture_output=True, text=True)
    assert "meta-data" in listing.stdout and "user-data" in listing.stdout
    meta = subprocess.run(["mtype", "-i", str(seed), "::meta-data"], capture_output=True,
                          text=True).stdout
    assert f"local-hostname: {hostname(first)}" in meta and hostname(first) == f"jobs-{first.pk}"
    request_action(owner, first, "delete")
    assert run("delete", first) == "done"
    assert not seed.exists(), "the seed goes with the desktop"


def test_a_guest_ready_by_its_serial_marker_is_recorded(owner, test_pool):
    from django.utils import timezone

    from vdi.images.tiny import READY_MARKER
    from vdi.worker import guests

    desktop = create_desktop(owner, test_pool)
    run("provision", desktop)
    assert guests.check(desktop.pk) == "waiting"
    Path(desktop.serial_log_path).write_text(f"booting\n{READY_MARKER}\n")
    assert guests.check(desktop.pk) == "ready"
    desktop.refresh_from_db()
    assert desktop.guest_ready_at is not None and desktop.guest_ready_at <= timezone.now()
    Desktop.objects.filter(pk=desktop.pk).update(guest_ready_at=None)
    Desktop.objects.filter(pk=desktop.pk).update(
        status_changed_at=timezone.now() - timedelta(hours=1))
    Path(desktop.serial_log_path).write_text("")
    assert guests.check(desktop.pk) == "timeout"
    get_driver(TEST_URI).undefine(desktop.domain_name, (Path(desktop.disk_path),))


def test_a_watch_sent_before_the_boot_is_marked_done_waits_for_it(owner, test_pool):
    """The job sends the watch right after starting the guest and marks the desktop running
    just after: a watch that runs in between waits instead of giving up on the guest."""
    from vdi.images.tiny import READY_MARKER
    from vdi.worker import guests

    desktop = create_desktop(owner, test_pool)
    run("provision", desktop)
    Path(desktop.serial_log_path).write_text(f"{READY_MARKER}\n")
    Desktop.objects.filter(pk=desktop.pk).update(status=DesktopStatus.RESETTING)
    assert guests.check(desktop.pk) == "waiting", "still resetting: not looked at yet"
    Desktop.objects.filter(pk=desktop.pk).update(status=DesktopStatus.RUNNING)
    assert guests.check(desktop.pk) == "ready"
    first = Desktop.objects.get(pk=desktop.pk).guest_ready_at
    assert guests.check(desktop.pk) == "ready"
    assert Desktop.objects.get(pk=desktop.pk).guest_ready_at == first, "marked once"
    Desktop.objects.filter(pk=desktop.pk).update(status=DesktopStatus.STOPPED)
    assert guests.check(desktop.pk) == "gone"
    get_driver(TEST_URI).undefine(desktop.domain_name, (Path(desktop.disk_path),))


def console_password_of(desktop: Desktop) -> str | None:
    """The VNC password the domain's definition holds (the test driver assigns no port, so
    read the definition itself rather than the endpoint)."""
    import libvirt
    from lxml import etree

    domain = get_driver(TEST_URI).connection().lookupByName(desktop.domain_name)
    graphics = etree.fromstring(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE).encode()).find(
        "devices/graphics")
    assert graphics is not None, "a screen"
    return graphics.get("passwd")


def test_a_desktop_without_a_console_password_gets_one_at_its_next_start(owner, test_pool):
    """Desktops made before console passwords existed: the next start gives them one, in the
    row the proxy reads and in the domain's definition the guest's VNC server uses."""
    desktop = create_desktop(owner, test_pool)
    run("provision", desktop)
    request_action(owner, desktop, "stop")
    assert run("stop", desktop) == "done"
    Desktop.objects.filter(pk=desktop.pk).update(vnc_password="")
    request_action(owner, desktop, "start")
    assert run("start", desktop) == "done"
    desktop.refresh_from_db()
    assert len(desktop.vnc_password) == 8
    assert console_password_of(desktop) == desktop.vnc_password
    get_driver(TEST_URI).undefine(desktop.domain_name, (Path(desktop.disk_path),))


def test_a_start_keeps_the_console_password_it_has(owner, test_pool):
    desktop = create_desktop(owner, test_pool)
    run("provision", desktop)
    desktop.refresh_from_db()
    given = desktop.vnc_password
    for action in ("stop", "start"):
        request_action(owner, desktop, action)
        run(action, desktop)
    desktop.refresh_from_db()
    assert desktop.vnc_password == given == console_password_of(desktop)
    get_driver(TEST_URI).undefine(desktop.domain_name, (Path(desktop.disk_path),))


def test_reset_and_release_change_the_console_password(owner, test_pool):
    desktop = create_desktop(owner, test_pool)
    run("provision", desktop)
    desktop.refresh_from_db()
    seen = [desktop.vnc_password]
    for action in ("reset", "release"):
        request_action(owner, desktop, action)
        assert run(action, desktop) == "done"
        desktop.refresh_from_db()
        assert desktop.vnc_password not in seen, f"a new password after the {action}"
        assert console_password_of(desktop) == desktop.vnc_password
        seen.append(desktop.vnc_password)
    assert desktop.owner is None and desktop.pristine, "released: reset, the next user's"
    get_driver(TEST_URI).undefine(desktop.domain_name, (Path(desktop.disk_path),))

"""The reconciler on libvirt's test:///default driver: drift, strays, stuck desktops."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from tests.support import make_version
from vdi.choices import DesktopStatus
from vdi.hypervisor import DiskSpec, DomainSpec, DomainType, PowerState, get_driver
from vdi.hypervisor.disks import create_blank
from vdi.models import Desktop, Host, Pool, Stray
from vdi.services.desktops import create_desktop
from vdi.worker import jobs
from vdi.worker.reconcile import reconcile

TEST_URI = "test:///default"


@pytest.fixture
def test_host(db, tmp_path: Path, settings) -> Host:
    settings.RECONCILE_GRACE = 600
    settings.STUCK_AFTER = 900
    return Host.objects.create(name=settings.HOST_NAME, libvirt_uri=TEST_URI, domain_type="qemu",
                               storage_dir=str(tmp_path / "disks"), memory_capacity_mib=4096)


@pytest.fixture
def test_pool(test_host, tmp_path: Path, owner) -> Pool:
    base = tmp_path / "base.qcow2"
    create_blank(base, 32 * 1024 * 1024)
    pool = Pool.objects.create(name="Rec", image=make_version("rec", str(base)).image,
                               memory_mib=128, max_per_user=5)
    pool.users.add(owner)
    return pool


@pytest.fixture
def driver():
    return get_driver(TEST_URI)


def provisioned(owner, pool: Pool) -> Desktop:
    desktop = create_desktop(owner, pool)
    operation = desktop.operations.get()
    assert jobs.execute("provision", desktop.pk, operation.pk) == "done"
    desktop.refresh_from_db()
    return desktop


def later(minutes: float):
    return timezone.now() + timedelta(minutes=minutes)


def stray_domain(driver, host: Host, name: str, disks: tuple[Path, ...] = ()) -> None:
    import uuid

    for disk in disks:
        create_blank(disk, 1024 * 1024)
    driver.define(DomainSpec(name=name, uuid=str(uuid.uuid4()), domain_type=DomainType.QEMU,
                             memory_mib=64, vcpus=1, disks=tuple(DiskSpec(d) for d in disks),
                             serial_log=Path(host.storage_dir) / f"{name}.log"))


def test_domain_powered_off_behind_our_back(owner, test_pool, driver):
    desktop = provisioned(owner, test_pool)
    driver.power_off(desktop.domain_name)  # virsh destroy
    run = reconcile(desktop.host)
    desktop.refresh_from_db()
    assert desktop.status == DesktopStatus.STOPPED and "powered off outside" in desktop.last_error
    assert run.findings[0]["kind"] == "drift"
    driver.undefine(desktop.domain_name, (Path(desktop.disk_path),))


def test_domain_undefined_behind_our_back_is_stopped_and_starts_again(owner, test_pool, driver):
    desktop = provisioned(owner, test_pool)
    driver.undefine(desktop.domain_name)  # virsh destroy + virsh undefine
    reconcile(desktop.host)
    desktop.refresh_from_db()
    assert desktop.status == DesktopStatus.STOPPED and "undefined outside" in desktop.last_error
    from vdi.services.desktops import request_action

    operation = request_action(owner, desktop, "start")
    assert jobs.execute("start", desktop.pk, operation.pk) == "done"
    assert driver.state(desktop.domain_name) == PowerState.RUNNING
    driver.undefine(desktop.domain_name, (Path(desktop.disk_path),))


def test_a_domain_started_behind_our_back_is_running(owner, test_pool, driver):
    desktop = provisioned(owner, test_pool)
    Desktop.objects.filter(pk=desktop.pk).update(status=DesktopStatus.STOPPED)
    reconcile(desktop.host)
    desktop.refresh_from_db()
    assert desktop.status == DesktopStatus.RUNNING
    driver.undefine(desktop.domain_name, (Path(desktop.disk_path),))


def test_stray_domain_is_reported_then_removed_after_the_grace(test_host, driver, settings):
    name = f"{settings.DOMAIN_PREFIX}-straydomain1"
    disk = Path(test_host.storage_dir) / f"{name}.qcow2"
    Path(test_host.storage_dir).mkdir(parents=True)
    stray_domain(driver, test_host, name, (disk,))
    first = reconcile(test_host)
    assert {"kind": "stray domain", "target": name,
            "action": "reported; removed after the grace period if it is a leftover"} in \
        first.findings
    assert driver.lookup(name) is not None, "nothing removed within the grace period"
    reconcile(test_host, now=later(11))
    assert driver.lookup(name) is None
    assert Stray.objects.get(kind="domain", name=name).action == "powered off and undefined"
    reconcile(test_host, now=later(22))  # its disk became a stray of its own
    reconcile(test_host, now=later(33))
    assert not disk.exists(), "a leftover system disk goes after its own grace period"


def test_stray_data_disk_is_quarantined_never_deleted(test_host, settings):
    storage = Path(test_host.storage_dir)
    storage.mkdir(parents=True)
    data = storage / f"{settings.DOMAIN_PREFIX}-gone123-data.qcow2"
    create_blank(data, 1024 * 1024)
    reconcile(test_host)
    run = reconcile(test_host, now=later(11))
    assert not data.exists()
    moved = list((storage / "quarantine").glob(f"*{data.name}"))
    assert len(moved) == 1 and moved[0].stat().st_size > 0
    assert "quarantined to" in run.findings[0]["action"]


def test_disks_of_live_desktops_are_never_strays(owner, test_pool, driver):
    test_pool.persistence = "persistent"
    test_pool.save()
    desktop = provisioned(owner, test_pool)
    reconcile(desktop.host)
    run = reconcile(desktop.host, now=later(60))
    assert run.findings == []
    assert Path(desktop.disk_path).exists() and Path(desktop.data_disk_path).exists()
    driver.undefine(desktop.domain_name, (Path(desktop.disk_path), Path(desktop.data_disk_path)))


def test_stuck_provisioning_becomes_an_error_and_leaves_nothing(owner, test_pool, driver):
    desktop = create_desktop(owner, test_pool)  # the worker died before doing anything...
    Path(desktop.disk_path).parent.mkdir(parents=True, exist_ok=True)
    create_blank(Path(desktop.disk_path), 1024 * 1024)  # ...or after cloning
    assert reconcile(desktop.host, now=later(5)).findings == [], "still within its deadline"
    run = reconcile(desktop.host, now=later(16))
    desktop.refresh_from_db()
    assert desktop.status == DesktopStatus.ERROR
    assert "stuck in 'provisioning'" in desktop.error_detail
    assert not Path(desktop.disk_path).exists() and driver.lookup(desktop.domain_name) is None
    assert run.findings[0]["action"].startswith("error; half-made")


def test_stuck_stop_becomes_an_error_with_the_reason(owner, test_pool, driver):
    desktop = provisioned(owner, test_pool)
    Desktop.objects.filter(pk=desktop.pk).update(status=DesktopStatus.STOPPING)
    reconcile(desktop.host, now=later(16))
    desktop.refresh_from_db()
    assert desktop.status == DesktopStatus.ERROR and "stuck in 'stopping'" in desktop.error_detail
    assert Path(desktop.disk_path).exists(), "only a provisioning's own leftovers are removed"
    driver.undefine(desktop.domain_name, (Path(desktop.disk_path),))


def test_a_start_refuses_to_replace_a_lost_data_disk(owner, test_pool, driver):
    test_pool.persistence = "persistent"
    test_pool.save()
    desktop = provisioned(owner, test_pool)
    driver.power_off(desktop.domain_name)
    Path(desktop.data_disk_path).unlink()
    Desktop.objects.filter(pk=desktop.pk).update(status=DesktopStatus.STOPPED)
    from vdi.services.desktops import request_action

    operation = request_action(owner, desktop, "start")
    assert jobs.execute("start", desktop.pk, operation.pk) == "failed"
    desktop.refresh_from_db()
    assert "data disk" in desktop.last_error and "missing" in desktop.last_error
    assert not Path(desktop.data_disk_path).exists(), "no empty disk papered over the loss"
    driver.undefine(desktop.domain_name, (Path(desktop.disk_path),))


def test_backups_of_deleted_desktops_go_after_the_orphan_period(test_host, tmp_path, settings):
    from vdi.choices import BackupKind, BackupStatus
    from vdi.models import Backup

    settings.BACKUP_ORPHAN_DAYS = 30

    def backup(name: str, days_old: int, parent: Backup | None = None) -> Backup:
        folder = tmp_path / "backups" / name
        folder.mkdir(parents=True)
        (folder / "vda.qcow2").write_bytes(b"x")
        made = Backup.objects.create(
            desktop=None, desktop_name="gone", host=test_host, parent=parent,
            kind=BackupKind.INCREMENTAL if parent else BackupKind.FULL, checkpoint=name,
            folder=str(folder), status=BackupStatus.READY)
        Backup.objects.filter(pk=made.pk).update(
            created_at=timezone.now() - timedelta(days=days_old))
        return made

    old_full = backup("old-full", 40)
    old_child = backup("old-child", 35, old_full)
    young_full = backup("young-full", 40)
    young_child = backup("young-child", 3, young_full)  # still restorable: keeps its parent
    run = reconcile(test_host)
    left = set(Backup.objects.values_list("pk", flat=True))
    assert left == {young_full.pk, young_child.pk}
    assert not Path(old_full.folder).exists() and not Path(old_child.folder).exists()
    assert Path(young_full.folder).exists()
    assert sum(f["kind"] == "orphan backup" for f in run.findings) == 2

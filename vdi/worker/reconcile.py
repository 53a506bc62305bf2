"""The reconciler: compare a host's libvirt domains and disk files with the database, repair.

- A desktop the DB thinks is running whose domain was powered off or undefined behind the
  portal's back is marked stopped (a start redefines the domain from the DB).
- A desktop stuck in a transitional state past ``VDI_STUCK_AFTER`` (its worker died) moves to
  error with the reason; a provisioning that never finished also loses what it had made.
- A domain or disk file with the portal's prefix that no desktop owns is recorded as a stray;
  after ``VDI_RECONCILE_GRACE`` a leftover domain or system disk is removed, while a data disk
  (``*-data.qcow2``, a user's files) is only moved to ``<storage>/quarantine/``.
- A running desktop whose image has the guest agent reports its facts again (addresses and
  signed-in users change while it runs).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from vdi import state
from vdi.choices import TRANSITIONAL_STATUSES, BackupStatus, DesktopStatus, SnapshotStatus
from vdi.hypervisor import DomainInfo, HypervisorError, PowerState
from vdi.live import events as live
from vdi.models import Backup, Desktop, Host, ReconcileRun, Snapshot, Stray
from vdi.worker import backups, snapshots
from vdi.worker.guests import refresh_facts
from vdi.worker.hosts import driver_for
from vdi.worker.jobs import record_endpoint

log = logging.getLogger(__name__)
DATA_SUFFIX = "-data.qcow2"


@dataclass(frozen=True)
class Finding:
    kind: str
    target: str
    action: str


def reconcile(host: Host, now: datetime | None = None) -> ReconcileRun:
    now = now or timezone.now()
    run = ReconcileRun.objects.create(host=host)
    findings: list[Finding] = []
    try:
        domains = _our_domains(host)
        findings += _check_desktops(host, domains, now)
        findings += _check_stray_domains(host, domains, now)
        findings += _check_stray_disks(host, now)
        findings += _purge_orphan_backups(host, now)
    except HypervisorError as exc:
        run.error = str(exc)
    run.findings = [asdict(f) for f in findings]
    run.finished_at = timezone.now()
    run.save()
    for finding in findings:
        log.warning("reconcile %s: %s %s -> %s", host, finding.kind, finding.target,
                    finding.action)
    if findings or run.error:  # the dashboards show its findings (a quiet pass changes nothing)
        live.reconciled(host.pk)
    return run


def _our_domains(host: Host) -> dict[str, DomainInfo]:
    prefix = settings.DOMAIN_PREFIX + "-"
    return {d.name: d for d in driver_for(host).list_domains() if d.name.startswith(prefix)}


# --- desktops the DB knows ---------------------------------------------------------------------

def _check_desktops(host: Host, domains: dict[str, DomainInfo], now: datetime) -> list[Finding]:
    findings = []
    for desktop in Desktop.objects.filter(host=host):
        if desktop.status in TRANSITIONAL_STATUSES:
            finding = _check_stuck(desktop, now)
            if finding is not None:  # its worker died: what it left of a snapshot is settled
                findings += [Finding("snapshot", str(desktop), what) for what in
                             _settle_snapshots(desktop)]
        else:
            finding = _check_power(desktop, domains.get(desktop.domain_name))
            if finding is None and desktop.status == DesktopStatus.RUNNING:
                refresh_facts(desktop)
            findings += [Finding("snapshot", str(desktop), what) for what in
                         _settle_snapshots(desktop)]
        if finding is not None:
            findings.append(finding)
    return findings


def _settle_snapshots(desktop: Desktop) -> list[str]:
    """Snapshot rows a crashed worker left half-way agree with the disks again, and its
    unfinished backups go."""
    done = []
    if Snapshot.objects.filter(desktop=desktop).exclude(status=SnapshotStatus.READY).exists():
        done += snapshots.settle(desktop)
    if Backup.objects.filter(desktop=desktop, status=BackupStatus.RUNNING).exists():
        done += backups.settle(desktop)
    return done


def _check_stuck(desktop: Desktop, now: datetime) -> Finding | None:
    if desktop.status_changed_at > now - timedelta(seconds=settings.STUCK_AFTER):
        return None  # a task is (probably) working on it
    detail = (f"stuck in '{desktop.status}' since {desktop.status_changed_at:%Y-%m-%d %H:%M} "
              "(its worker probably died); cleared by the reconciler")
    words = (f"The desktop stayed '{desktop.get_status_display()}' for too long and was "
             "stopped there; try the action again.")
    was = desktop.status
    if not state.compare_and_set(desktop.pk, {DesktopStatus(was)}, DesktopStatus.ERROR, words,
                                 detail):
        return None
    if was == DesktopStatus.PROVISIONING:
        _discard(desktop)
        return Finding("stuck", str(desktop), "error; half-made domain and disks removed")
    return Finding("stuck", str(desktop), f"error (was {was})")


def _discard(desktop: Desktop) -> None:
    made = [Path(desktop.disk_path)]
    if desktop.data_disk_path:
        made.append(Path(desktop.data_disk_path))  # made by this provisioning: no user data
    driver_for(desktop.host).undefine(desktop.domain_name, tuple(made))


def _check_power(desktop: Desktop, domain: DomainInfo | None) -> Finding | None:
    running = domain is not None and domain.state == PowerState.RUNNING
    if desktop.status == DesktopStatus.RUNNING and not running:
        what = "undefined" if domain is None else "powered off"
        if state.compare_and_set(desktop.pk, {DesktopStatus.RUNNING}, DesktopStatus.STOPPED,
                                 f"its virtual machine was {what} outside the portal"):
            record_endpoint(desktop.pk, None)
            return Finding("drift", str(desktop), f"domain {what} outside the portal: stopped")
    stopped = {DesktopStatus.STOPPED}
    if desktop.status == DesktopStatus.STOPPED and running and state.compare_and_set(
        desktop.pk, stopped, DesktopStatus.RUNNING
    ):
        record_endpoint(desktop.pk, driver_for(desktop.host).vnc_endpoint(desktop.domain_name))
        return Finding("drift", str(desktop), "started outside the portal: running")
    return None


# --- what no desktop owns ----------------------------------------------------------------------

def _purge_orphan_backups(host: Host, now: datetime) -> list[Finding]:
    """Backups of a deleted desktop are kept ``VDI_BACKUP_ORPHAN_DAYS`` (to restore it as a
    new desktop), then removed: newest first, so no backup outlives one it builds on."""
    cutoff = now - timedelta(days=settings.BACKUP_ORPHAN_DAYS)
    orphans = Backup.objects.filter(host=host, desktop__isnull=True,
                                    status=BackupStatus.READY)
    if not orphans.filter(created_at__lt=cutoff).exists():
        return []
    findings = []
    for backup in orphans.order_by("-created_at", "-pk"):
        if backup.created_at < cutoff and not backup.children.exists():
            backups.remove(backup)
            findings.append(Finding("orphan backup", backup.folder,
                                    f"removed (its desktop {backup.desktop_name} was deleted)"))
    return findings


def _owned_names() -> set[str]:
    return set(Desktop.objects.values_list("domain_name", flat=True))


def _owned_paths() -> set[str]:
    paths = set(Desktop.objects.values_list("disk_path", flat=True))
    return paths | set(Desktop.objects.exclude(data_disk_path="").values_list("data_disk_path",
                                                                              flat=True))


def _stray(host: Host, kind: str, name: str, now: datetime) -> Stray | None:
    """The open stray record; None while it is younger than the grace period."""
    stray, _ = Stray.objects.get_or_create(host=host, kind=kind, name=name,
                                           resolved_at__isnull=True)
    if stray.first_seen_at > now - timedelta(seconds=settings.RECONCILE_GRACE):
        return None
    return stray


def _resolve(stray: Stray, action: str) -> Finding:
    stray.resolved_at = timezone.now()
    stray.action = action
    stray.save()
    return Finding(f"stray {stray.kind}", stray.name, action)


def _check_stray_domains(host: Host, domains: dict[str, DomainInfo],
                         now: datetime) -> list[Finding]:
    findings = []
    owned = _owned_names()
    for name, domain in domains.items():
        if name in owned:
            continue
        stray = _stray(host, Stray.Kind.DOMAIN, name, now)
        if stray is None:
            findings.append(Finding("stray domain", name, "reported; removed after the grace "
                                    "period if it is a leftover"))
            continue
        data = tuple(p for p in domain.disk_paths if p.name.endswith(DATA_SUFFIX))
        driver_for(host).undefine(name)  # disks are judged on their own below
        findings.append(_resolve(stray, "powered off and undefined" + (
            "; its data disk is left for quarantine" if data else "")))
    return findings


def _check_stray_disks(host: Host, now: datetime) -> list[Finding]:
    findings: list[Finding] = []
    owned = _owned_paths()
    files = driver_for(host).files
    for path in files.glob(Path(host.storage_dir), f"{settings.DOMAIN_PREFIX}-*.qcow2"):
        if str(path) in owned:
            continue
        stray = _stray(host, Stray.Kind.DISK, str(path), now)
        if stray is None:
            findings.append(Finding("stray disk", str(path), "reported"))
            continue
        if path.name.endswith(DATA_SUFFIX):
            findings.append(_resolve(stray, f"quarantined to {files.quarantine(path)}"))
        else:
            files.remove(path)
            findings.append(_resolve(stray, "deleted (a leftover system disk)"))
    _close_vanished(host, owned)
    return findings


def _close_vanished(host: Host, owned: set[str]) -> None:
    """Strays that went away by themselves (or were adopted) are closed."""
    files = driver_for(host).files
    for stray in Stray.objects.filter(host=host, resolved_at__isnull=True):
        gone = (stray.kind == Stray.Kind.DISK and
                (not files.exists(Path(stray.name)) or stray.name in owned))
        if gone:
            stray.resolved_at = timezone.now()
            stray.action = "gone by itself"
            stray.save()

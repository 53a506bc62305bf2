"""The dashboard's thumbnails: the host's worker looks at the screen of each running desktop
on its host (libvirt's screenshot call), stores a small JPEG and tells the dashboards.
Beat asks every ``VDI_THUMBNAIL_INTERVAL`` s, on each host's queue."""

from __future__ import annotations

import logging
import time

from django.conf import settings

from vdi import thumbnails
from vdi.choices import DesktopStatus
from vdi.hypervisor import HypervisorError
from vdi.hypervisor.thumbnails import thumbnail
from vdi.live import events as live
from vdi.models import Desktop, Host
from vdi.worker.hosts import driver_for

log = logging.getLogger(__name__)


def take(host_id: int) -> dict[str, int]:
    """A thumbnail of every running desktop of the host whose last one is older than half the
    interval (so a second delivery, or a run that overlaps the next, does nothing twice);
    then thumbnails that show no running desktop any more go. Counts what it did."""
    host = Host.objects.filter(pk=host_id, enabled=True).first()
    counts = {"taken": 0, "fresh": 0, "failed": 0, "removed": 0}
    if host is None:
        return counts
    interval = max(settings.THUMBNAIL_INTERVAL, 5)  # also when asked by hand with it off
    fresh_for = interval / 2
    desktops = Desktop.objects.filter(host=host, status=DesktopStatus.RUNNING).values_list(
        "pk", "pool_id", "domain_name")
    for desktop_id, pool_id, domain_name in desktops:
        taken = thumbnails.taken_at(domain_name)
        if taken is not None and time.time() - taken.timestamp() < fresh_for:
            counts["fresh"] += 1
            continue
        try:
            shot = driver_for(host).screenshot(domain_name)
            if shot is None:  # it stopped meanwhile
                continue
            thumbnails.store(domain_name, thumbnail(shot))
        except HypervisorError as exc:
            counts["failed"] += 1
            log.info("no thumbnail of %s: %s", domain_name, exc)
            if exc.unreachable:
                break  # the host's libvirt is away: the heartbeat says so
            continue
        counts["taken"] += 1
        live.thumbnail_taken(desktop_id, pool_id)
    counts["removed"] = prune(2 * interval)
    return counts


def prune(older_than: float) -> int:
    """Remove thumbnails older than ``older_than`` s of desktops that are not running (any
    host's: the folder is shared); a desktop just started keeps its first one."""
    running = set(Desktop.objects.filter(status=DesktopStatus.RUNNING)
                  .values_list("domain_name", flat=True))
    removed = 0
    now = time.time()
    for path in thumbnails.stored():
        domain_name = path.name.removesuffix(thumbnails.SUFFIX)
        if domain_name in running:
            continue
        try:
            if now - path.stat().st_mtime > older_than:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed

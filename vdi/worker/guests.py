"""Is a booted guest ready for its user, and what does it say about itself?

"Ready" follows the image version's readiness: the guest agent answers, someone is signed in
(the desktop session logs its user in by itself), the image's session process runs (when it
names one) and, when it has a network card, it has an address; or the tiny image's marker is
on its serial port; or booted is ready. ``check`` looks once and records what it sees; the
task that calls it asks again a moment later until the guest is ready or
``VDI_GUEST_READY_TIMEOUT`` passes, so no worker waits for a guest to boot.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from vdi import telemetry
from vdi.choices import TRANSITIONAL_STATUSES, DesktopStatus, KeyboardLayout, Readiness
from vdi.hypervisor import HypervisorError
from vdi.images.tiny import READY_MARKER
from vdi.live import events as live
from vdi.models import Desktop
from vdi.services import claims
from vdi.services.preferences import has_session_agent, keyboard_layout
from vdi.worker import session
from vdi.worker.hosts import driver_for
from vdi.worker.specs import nics_of

log = logging.getLogger(__name__)


def _ready(desktop: Desktop) -> tuple[bool, dict[str, object]]:
    driver = driver_for(desktop.host)
    version = desktop.image_version
    readiness = version.readiness if version is not None else Readiness.NONE  # installing
    if readiness == Readiness.SERIAL:
        return driver.files.contains(Path(desktop.serial_log_path), READY_MARKER), {}
    if readiness == Readiness.AGENT:
        if not driver.agent.ping(desktop.domain_name):
            return False, {}
        facts = driver.agent.facts(desktop.domain_name)
        ready = bool(facts.users) and (bool(facts.addresses) or not nics_of(desktop))
        return ready and _session_runs(desktop), facts.as_dict()
    return True, {}


def _session_runs(desktop: Desktop) -> bool:
    process = desktop.image_version.session_process if desktop.image_version else ""
    if not process:
        return True
    found = driver_for(desktop.host).agent.run(desktop.domain_name, "pgrep", ["-x", process])
    return found.exitcode == 0


def check(desktop_id: int) -> str:
    """'ready', 'waiting' (ask again), 'timeout' or 'gone' (not running any more).

    A job sends its watch once the guest is started but marks the desktop running only
    after, so a desktop still in a transition is waited for, not given up on."""
    desktop = (Desktop.objects.select_related("host", "image_version", "owner", "pool")
               .filter(pk=desktop_id).first())
    if desktop is None:
        return "gone"
    if desktop.status in TRANSITIONAL_STATUSES:
        return "timeout" if _too_long(desktop) else "waiting"
    if desktop.status != DesktopStatus.RUNNING:
        return "gone"
    if desktop.guest_ready_at is not None:
        return "ready"
    try:
        ready, facts = _ready(desktop)
    except HypervisorError as exc:
        log.info("guest of %s not ready yet: %s", desktop, exc)
        ready, facts = False, {}
    now = timezone.now()
    if ready:
        marked = Desktop.objects.filter(pk=desktop.pk, status=DesktopStatus.RUNNING,
                                        guest_ready_at__isnull=True).update(
            guest_ready_at=now, guest_facts=facts)
        if not marked:  # another watch of the same boot was first
            return "ready"
        live.desktop_changed(desktop.pk)
        # a claim waiting for it, if any: the metric, and the dashboard's chart
        claims.timed(desktop, telemetry.claim_ready(desktop.pk, now.timestamp()), now)
        _owners_keyboard(desktop)
        return "ready"
    if facts:
        Desktop.objects.filter(pk=desktop.pk, status=DesktopStatus.RUNNING).update(
            guest_facts=facts)
    return "timeout" if _too_long(desktop) else "waiting"


def _too_long(desktop: Desktop) -> bool:
    if timezone.now() - desktop.status_changed_at <= timedelta(
            seconds=settings.GUEST_READY_TIMEOUT):
        return False
    log.warning("guest of %s not ready after %s s", desktop, settings.GUEST_READY_TIMEOUT)
    return True


def _owners_keyboard(desktop: Desktop) -> None:
    """A desktop that is ready for its owner types with the owner's layout (the image's
    own is US English)."""
    if desktop.owner is None or not has_session_agent(desktop):
        return
    layout = keyboard_layout(desktop.owner)
    if layout != KeyboardLayout.US:
        session.apply_keyboard_layout(desktop.pk, layout)


def refresh_facts(desktop: Desktop) -> None:
    """Ask a running agent image again (addresses and users change)."""
    version = desktop.image_version
    if version is None or version.readiness != Readiness.AGENT or desktop.guest_ready_at is None:
        return
    try:
        facts = driver_for(desktop.host).agent.facts(desktop.domain_name)
    except HypervisorError as exc:
        log.info("facts of %s: %s", desktop, exc)
        return
    # not onto a desktop that stopped while its agent answered
    Desktop.objects.filter(pk=desktop.pk, status=DesktopStatus.RUNNING).update(
        guest_facts=facts.as_dict())

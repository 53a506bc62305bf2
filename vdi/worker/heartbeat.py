"""The heartbeat a host's worker writes: proof that a worker consumes the host's queue, and
whether the host's libvirt answers it. Beat sends one to each enabled host every
``VDI_HEARTBEAT_INTERVAL`` s; ``/health/ready`` reads them (the web tier never asks libvirt)."""

from __future__ import annotations

import logging

from django.utils import timezone

from vdi.hypervisor import HypervisorError
from vdi.models import Host
from vdi.worker.hosts import driver_for, settle_domain_type

log = logging.getLogger(__name__)


def beat(host_id: int) -> str:
    """Record the beat: 'ok', the problem in words, or 'gone' (no such host any more)."""
    host = Host.objects.filter(pk=host_id).first()
    if host is None:
        return "gone"
    try:
        driver_for(host).connection()
        problem = ""
        settle_domain_type(host)  # a host added while its worker runs: settled before claims
    except HypervisorError as exc:
        problem = f"libvirt does not answer: {exc}"[:300]
        log.warning("heartbeat of host %s: %s", host.name, problem)
    Host.objects.filter(pk=host.pk).update(heartbeat_at=timezone.now(), heartbeat_error=problem)
    return problem or "ok"

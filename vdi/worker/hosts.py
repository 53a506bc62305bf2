"""Per-host facts the worker needs: its driver and its settled domain type."""

from __future__ import annotations

import logging
from pathlib import Path

from django.conf import settings

from vdi.hypervisor import DomainType, Driver, get_driver
from vdi.hypervisor.probe import ProbeVerdict, kvm_verdict
from vdi.images.tiny import PROBE_MARKER
from vdi.models import Host, ImageVersion

log = logging.getLogger(__name__)


def driver_for(host: Host) -> Driver:
    return get_driver(host.libvirt_uri)


def domain_type_for(host: Host) -> DomainType:
    """The host's domain type. ``auto`` is settled once, before the host takes work
    (``scripts/run`` and the worker's start call :func:`settle_domain_type`); a host added
    while its worker runs is settled here, once, on its first job."""
    if host.effective_domain_type:
        return DomainType(host.effective_domain_type)
    return settle_domain_type(host)


def settle_domain_type(host: Host) -> DomainType:
    """Decide ``kvm`` or ``qemu`` for a host whose type is ``auto`` and not yet decided, say
    which and why, and store both on the host. Never raises for a probe that cannot decide:
    it falls back to ``qemu`` and says so."""
    if host.effective_domain_type:
        return DomainType(host.effective_domain_type)
    try:
        verdict = _probe(host)
    except Exception as exc:  # the probe's own failure must never fail a desktop's job
        log.exception("Host %s: the KVM probe failed", host.name)
        verdict = ProbeVerdict(False, f"the probe could not run: {exc}")
    resolved = DomainType.KVM if verdict.works else DomainType.QEMU
    reason = _reason_in_words(resolved, verdict)
    Host.objects.filter(pk=host.pk).update(resolved_domain_type=resolved.value,
                                           domain_type_reason=reason[:300])
    host.resolved_domain_type, host.domain_type_reason = resolved.value, reason[:300]
    if verdict.works:
        log.info("Host %s: %s", host.name, reason)
    else:
        log.warning("!!! Host %s: %s !!!", host.name, reason)
    return resolved


def _reason_in_words(resolved: DomainType, verdict: ProbeVerdict) -> str:
    if resolved == DomainType.KVM:
        return f"KVM works; guests use domain type 'kvm' ({verdict.reason})"
    return (f"KVM does NOT work here ({verdict.reason}); guests use domain type 'qemu' "
            "(software emulation, much slower)")


def _probe(host: Host) -> ProbeVerdict:
    version = ImageVersion.objects.exclude(kernel_path="").exclude(initrd_path="").first()
    if version is None:
        return ProbeVerdict(False, "no image with a kernel to probe KVM with")
    return kvm_verdict(driver_for(host), Path(version.kernel_path), Path(version.initrd_path),
                       settings.LOG_DIR, PROBE_MARKER, settings.PROBE_TIMEOUT)


def settle_hosts(names: list[str] | None = None) -> list[str]:
    """Settle the domain type of the enabled hosts named (all when ``None``) whose type is
    ``auto``; one line in words per host, saying which type and why. The libvirt connections
    opened for it are closed again (this may run in a worker's parent before it forks)."""
    lines = []
    hosts = Host.objects.filter(enabled=True)
    if names is not None:
        hosts = hosts.filter(name__in=names)
    for host in hosts:
        settled = bool(host.effective_domain_type)
        resolved = settle_domain_type(host)
        driver_for(host).close()
        why = host.domain_type_reason or (
            f"set to '{host.domain_type}'" if host.domain_type != "auto" else "settled earlier")
        lines.append(f"Host {host.name}: domain type '{resolved.value}' "
                     f"({'as before: ' if settled else ''}{why})")
    return lines

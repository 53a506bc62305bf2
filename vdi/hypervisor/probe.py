"""Does KVM work on this host? Boot a tiny probe guest under ``kvm`` and wait for its marker.

On some machines ``/dev/kvm`` exists but guests hang right after the boot loader; the only
proof that KVM works is a guest that gets as far as its init. The probe never raises: a probe
that cannot decide says why, and the caller falls back to software emulation.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from vdi.hypervisor.domain_xml import build_domain_xml
from vdi.hypervisor.driver import Driver
from vdi.hypervisor.errors import HypervisorError
from vdi.hypervisor.specs import DomainSpec, DomainType, KernelBoot

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProbeVerdict:
    """Whether KVM works, and why the probe thinks so, in words for an operator."""

    works: bool
    reason: str


def kvm_verdict(
    driver: Driver, kernel: Path, initrd: Path, log_dir: Path, marker: str, timeout: float,
    domain_type: DomainType = DomainType.KVM,
) -> ProbeVerdict:
    """Boot a transient guest under ``domain_type`` and wait ``timeout`` s for ``marker`` on
    its serial port. ``domain_type`` exists for tests: under ``qemu`` the probe proves itself.

    The serial log is made by this process before the guest starts (as desktops' logs are), so
    that virtlogd, running as root, appends to a file the service user can read.
    """
    name = f"vdi-probe-{uuid.uuid4().hex[:8]}"
    serial_log = log_dir / f"{name}.log"
    spec = DomainSpec(
        name=name, uuid=str(uuid.uuid4()), domain_type=domain_type, memory_mib=128, vcpus=1,
        disks=(), serial_log=serial_log,
        kernel_boot=KernelBoot(kernel, initrd, "console=ttyS0 vdi.probe=1 quiet"),
    )
    try:
        driver.files.prepare_log(serial_log)
    except OSError as exc:
        return ProbeVerdict(False, f"the probe could not make its serial log {serial_log}: "
                                   f"{exc.strerror}")
    try:
        driver.connection().createXML(build_domain_xml(spec), 0)
    except Exception as exc:  # libvirt refuses kvm outright when the module is missing
        serial_log.unlink(missing_ok=True)
        return ProbeVerdict(False, f"libvirt refused a {domain_type.value} guest: {exc}")
    try:
        return _watch(driver, serial_log, marker, timeout, domain_type)
    finally:
        with contextlib.suppress(HypervisorError):
            driver.power_off(name)
        with contextlib.suppress(OSError):
            serial_log.unlink(missing_ok=True)


def _watch(driver: Driver, serial_log: Path, marker: str, timeout: float,
           domain_type: DomainType) -> ProbeVerdict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if driver.files.contains(serial_log, marker):
                return ProbeVerdict(True, f"a {domain_type.value} probe guest reached its init")
        except HypervisorError as exc:
            return ProbeVerdict(False, f"the probe could not read its serial log: {exc}")
        time.sleep(0.25)
    return ProbeVerdict(False, f"a {domain_type.value} probe guest did not reach its init "
                               f"within {timeout:g} s (it hangs under this machine's KVM)")


def kvm_boots(
    driver: Driver, kernel: Path, initrd: Path, log_dir: Path, marker: str, timeout: float,
    domain_type: DomainType = DomainType.KVM,
) -> bool:
    """True if a transient guest prints ``marker`` on its serial port within ``timeout``."""
    return kvm_verdict(driver, kernel, initrd, log_dir, marker, timeout, domain_type).works

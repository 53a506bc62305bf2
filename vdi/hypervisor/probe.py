"""Does KVM work on this host? Boot a tiny probe guest under ``kvm`` and wait for its marker.

On some machines ``/dev/kvm`` exists but guests hang right after the boot loader; the only
proof that KVM works is a guest that gets as far as its init.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from pathlib import Path

from vdi.hypervisor.domain_xml import build_domain_xml
from vdi.hypervisor.driver import Driver
from vdi.hypervisor.errors import HypervisorError
from vdi.hypervisor.specs import DomainSpec, DomainType, KernelBoot

log = logging.getLogger(__name__)


def kvm_boots(
    driver: Driver, kernel: Path, initrd: Path, log_dir: Path, marker: str, timeout: float,
    domain_type: DomainType = DomainType.KVM,
) -> bool:
    """True if a transient ``kvm`` guest prints ``marker`` on its serial port within ``timeout``.

    ``domain_type`` exists for tests: the same probe under ``qemu`` proves the probe works.
    """
    name = f"vdi-probe-{uuid.uuid4().hex[:8]}"
    serial_log = log_dir / f"{name}.log"
    spec = DomainSpec(
        name=name,
        uuid=str(uuid.uuid4()),
        domain_type=domain_type,
        memory_mib=128,
        vcpus=1,
        disks=(),
        serial_log=serial_log,
        kernel_boot=KernelBoot(kernel, initrd, "console=ttyS0 vdi.probe=1 quiet"),
    )
    try:
        driver.connection().createXML(build_domain_xml(spec), 0)
    except Exception as exc:  # libvirt refuses kvm outright when the module is missing
        log.warning("KVM probe could not start a guest: %s", exc)
        return False
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if serial_log.exists() and marker in serial_log.read_text(errors="replace"):
                return True
            time.sleep(0.25)
        return False
    finally:
        with contextlib.suppress(HypervisorError):
            driver.power_off(name)
        serial_log.unlink(missing_ok=True)

"""The hypervisor driver: about ten verbs over libvirt-python. Knows nothing of Django.

One ``Driver`` per libvirt URI and process. The connection opens lazily on first use and is
reopened after a fork (Celery's prefork children) or when libvirtd went away.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import libvirt

from vdi.hypervisor import disks
from vdi.hypervisor.agent import GuestAgent
from vdi.hypervisor.backups import Backups
from vdi.hypervisor.domain_xml import (
    build_domain_xml,
    parse_disk_paths,
    parse_metadata,
    parse_vnc_endpoint,
)
from vdi.hypervisor.errors import HypervisorError
from vdi.hypervisor.files import LocalFiles
from vdi.hypervisor.network_xml import NetworkSpec, build_network_xml
from vdi.hypervisor.snapshots import Snapshots
from vdi.hypervisor.specs import (
    DiskInfo,
    DomainInfo,
    DomainSpec,
    PowerState,
    Screenshot,
    Shutdown,
    VncEndpoint,
)

log = logging.getLogger(__name__)
SCREENSHOT_MAX_BYTES = 64 * 1024 * 1024  # a 4K screen as PPM is 25 MB

_RETRYABLE_CODES = {
    libvirt.VIR_ERR_NO_CONNECT,
    libvirt.VIR_ERR_RPC,
    libvirt.VIR_ERR_SYSTEM_ERROR,
    libvirt.VIR_ERR_OPERATION_TIMEOUT,
    libvirt.VIR_ERR_AGENT_UNRESPONSIVE,
    libvirt.VIR_ERR_OPERATION_INVALID,  # e.g. "domain is being started" by a concurrent call
    libvirt.VIR_ERR_INTERNAL_ERROR,
}
_STATES = {
    libvirt.VIR_DOMAIN_RUNNING: PowerState.RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: PowerState.RUNNING,
    libvirt.VIR_DOMAIN_SHUTOFF: PowerState.SHUTOFF,
    libvirt.VIR_DOMAIN_PAUSED: PowerState.PAUSED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: PowerState.PAUSED,
    libvirt.VIR_DOMAIN_SHUTDOWN: PowerState.SHUTTING_DOWN,
    libvirt.VIR_DOMAIN_CRASHED: PowerState.CRASHED,
}


def _with_fewer_flags(call: Callable[[int], Any], flags: int, fallback: int) -> Any:
    """``call(flags)``; a hypervisor driver that knows fewer flags (libvirt's test driver,
    for one) gets ``fallback``."""
    try:
        return call(flags)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() not in (libvirt.VIR_ERR_INVALID_ARG,
                                        libvirt.VIR_ERR_NO_SUPPORT):
            raise
        return call(fallback)


def _silence_libvirt(_ctx: object, _err: object) -> None:
    """libvirt prints every error to stderr by default; the driver reports them itself."""


libvirt.registerErrorHandler(_silence_libvirt, None)


def _lost_connection(exc: libvirt.libvirtError) -> bool:
    """The error says libvirtd went away (or never answered), not that the call was wrong."""
    code = exc.get_error_code()
    return code in (libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_ERR_RPC) or (
        code == libvirt.VIR_ERR_SYSTEM_ERROR and exc.get_error_domain() == libvirt.VIR_FROM_RPC)


@contextmanager
def _translate(what: str) -> Iterator[None]:
    try:
        yield
    except libvirt.libvirtError as exc:
        code = exc.get_error_code()
        raise HypervisorError(f"{what}: {exc.get_error_message()}",
                              retryable=code in _RETRYABLE_CODES,
                              unreachable=_lost_connection(exc)) from None


class Driver:
    """Hypervisor verbs for one libvirt URI."""

    def __init__(self, uri: str, poll_interval: float = 0.2) -> None:
        self.uri = uri
        self.poll_interval = poll_interval
        self.files = LocalFiles()  # the host's files: disks, logs, quarantine
        self.agent = GuestAgent(self)  # the guests' QEMU agents
        self.snapshots = Snapshots(self)  # internal snapshots: live (libvirt) and offline
        self.backups = Backups(self)  # backups with checkpoints (libvirt's backup API)
        self._conn: Any = None
        self._pid = 0

    # --- connection ---------------------------------------------------------------------------
    def connection(self) -> Any:
        if self._conn is not None and self._pid == os.getpid():
            try:
                if self._conn.isAlive():
                    return self._conn
            except libvirt.libvirtError:
                pass
        try:
            self._conn = libvirt.open(self.uri)
        except libvirt.libvirtError as exc:
            self._conn = None
            raise HypervisorError(f"connect to {self.uri}: {exc.get_error_message()}",
                                  unreachable=True) from None
        self._pid = os.getpid()
        return self._conn

    def close(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            with suppress(libvirt.libvirtError):
                self._conn.close()
        self._conn = None

    def _domain(self, name: str) -> Any | None:
        try:
            return self.connection().lookupByName(name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise HypervisorError(f"look up {name}: {exc.get_error_message()}",
                                  retryable=True, unreachable=_lost_connection(exc)) from None

    def _require(self, name: str) -> Any:
        dom = self._domain(name)
        if dom is None:
            raise HypervisorError(f"domain {name} does not exist")
        return dom

    # --- disks --------------------------------------------------------------------------------
    def clone_disk(self, base: Path, path: Path) -> DiskInfo:
        """Create ``path`` as a qcow2 linked clone (overlay) of ``base``."""
        return disks.create_overlay(base, path)

    def delete_disk(self, path: Path) -> bool:
        return disks.remove_disk(path)

    # --- domains ------------------------------------------------------------------------------
    def define(self, spec: DomainSpec) -> DomainInfo:
        """Define the domain persistently. An existing domain with the same UUID takes the new
        definition (a running one at its next boot); another domain of that name is an error."""
        existing = self._domain(spec.name)
        if existing is not None and existing.UUIDString() != spec.uuid:
            raise HypervisorError(f"define {spec.name}: another domain has that name")
        with _translate(f"define {spec.name}"):
            dom = self.connection().defineXML(build_domain_xml(spec))
        return self._info(dom)

    def start(self, name: str) -> None:
        """Boot the domain; a running domain is left alone."""
        dom = self._require(name)
        if self._state(dom) == PowerState.RUNNING:
            return
        with _translate(f"start {name}"):
            dom.create()

    def shutdown(self, name: str, timeout: float, agent: bool = False) -> Shutdown:
        """Ask the guest to power off (ACPI); with ``agent``, a guest that ignores ACPI is
        asked through its guest agent after half the time; power it off after ``timeout``.
        Says how it went off."""
        dom = self._domain(name)
        if dom is None or self._state(dom) == PowerState.SHUTOFF:
            return Shutdown.ACPI
        with _translate(f"shut down {name}"):
            try:
                _with_fewer_flags(dom.shutdownFlags, libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN, 0)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID:
                    raise
        off = lambda: self._state(dom) == PowerState.SHUTOFF  # noqa: E731
        if agent:
            if self._wait(off, timeout / 2):
                return Shutdown.ACPI
            log.info("%s ignored ACPI; asking its guest agent to power off", name)
            with suppress(HypervisorError):
                self.agent.shutdown(name)
            if self._wait(off, timeout / 2):
                return Shutdown.AGENT
        elif self._wait(off, timeout):
            return Shutdown.ACPI
        log.warning("%s did not shut down within %.0f s; powering off", name, timeout)
        self.power_off(name)
        return Shutdown.POWER_OFF

    def power_off(self, name: str) -> None:
        """Pull the plug; a stopped or missing domain is left alone."""
        dom = self._domain(name)
        if dom is None or self._state(dom) == PowerState.SHUTOFF:
            return
        with _translate(f"power off {name}"):
            try:
                dom.destroy()
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID:
                    raise

    def undefine(self, name: str, delete_disks: tuple[Path, ...] = ()) -> None:
        """Power off and remove the domain, then delete the given disk files.

        Disks are named by the caller so that a persistent user disk is never deleted by
        accident; a missing domain or file is not an error (the verb is idempotent).
        """
        dom = self._domain(name)
        if dom is not None:
            self.power_off(name)
            flags = (libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                     | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
            extra = (libvirt.VIR_DOMAIN_UNDEFINE_NVRAM  # UEFI guests' variables
                     | libvirt.VIR_DOMAIN_UNDEFINE_TPM  # and their TPM state
                     | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA)  # backups' bitmaps
            with _translate(f"undefine {name}"):
                try:
                    _with_fewer_flags(dom.undefineFlags, flags | extra, flags)
                except libvirt.libvirtError as exc:
                    if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                        raise
        for path in delete_disks:
            disks.remove_disk(path)

    def state(self, name: str) -> PowerState | None:
        """The domain's power state, or None when no such domain exists."""
        dom = self._domain(name)
        return None if dom is None else self._state(dom)

    def lookup(self, name: str) -> DomainInfo | None:
        dom = self._domain(name)
        return None if dom is None else self._info(dom)

    def vnc_endpoint(self, name: str) -> VncEndpoint | None:
        """Where the running domain's VNC server listens (None when it is not running)."""
        dom = self._domain(name)
        if dom is None or self._state(dom) != PowerState.RUNNING:
            return None
        with _translate(f"read {name}"):
            xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE)
        return parse_vnc_endpoint(xml)

    def screenshot(self, name: str, screen: int = 0,
                   max_bytes: int = SCREENSHOT_MAX_BYTES) -> Screenshot | None:
        """What the running domain's screen shows now, through libvirt's screenshot call (a
        stream); None when it is not running. Bigger than ``max_bytes``: an error."""
        dom = self._domain(name)
        if dom is None or self._state(dom) != PowerState.RUNNING:
            return None
        with _translate(f"screenshot {name}"):
            stream = self.connection().newStream(0)
            try:
                mime = dom.screenshot(stream, screen, 0)
                chunks, size = [], 0
                while chunk := stream.recv(256 * 1024):
                    if isinstance(chunk, int):  # -2: would block (a blocking stream never does)
                        continue
                    size += len(chunk)
                    if size > max_bytes:
                        raise HypervisorError(f"screenshot {name}: more than {max_bytes} bytes")
                    chunks.append(chunk)
                stream.finish()
            except BaseException:
                with suppress(libvirt.libvirtError):
                    stream.abort()
                raise
        return Screenshot(mime=str(mime or ""), data=b"".join(chunks))

    def ensure_network(self, spec: NetworkSpec) -> None:
        """The network exists, runs and starts with the host (made if missing)."""
        with _translate(f"network {spec.name}"):
            try:
                network = self.connection().networkLookupByName(spec.name)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_NETWORK:
                    raise
                network = self.connection().networkDefineXML(build_network_xml(spec))
            if not network.isActive():
                network.create()
            if not network.autostart():
                network.setAutostart(1)

    def list_domains(self) -> list[DomainInfo]:
        """Every domain on the host, running or not, with the portal's metadata if any."""
        with _translate("list domains"):
            doms = self.connection().listAllDomains()
        return [self._info(dom) for dom in doms]

    # --- helpers ------------------------------------------------------------------------------
    def _state(self, dom: Any) -> PowerState:
        with _translate("read state"):
            code, _reason = dom.state()
        return _STATES.get(code, PowerState.OTHER)

    def _info(self, dom: Any) -> DomainInfo:
        with _translate("read domain"):
            xml = dom.XMLDesc(0)
            persistent = bool(dom.isPersistent())
            name, uuid = dom.name(), dom.UUIDString()
        return DomainInfo(
            name=name,
            uuid=uuid,
            state=self._state(dom),
            persistent=persistent,
            disk_paths=parse_disk_paths(xml),
            metadata=parse_metadata(xml),
        )

    def _wait(self, done: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done():
                return True
            time.sleep(self.poll_interval)
        return done()


_drivers: dict[str, Driver] = {}


def get_driver(uri: str) -> Driver:
    """The process-wide driver for ``uri`` (its connection opens lazily, per process)."""
    driver = _drivers.get(uri)
    if driver is None:
        driver = _drivers[uri] = Driver(uri)
    return driver

"""The QEMU guest agent of a host's domains, reached through libvirt. No Django.

"Ready" for images that have an agent means it answers and someone is signed in (the desktop
session logs its user in by itself); the agent also reports what the portal shows (OS,
hostname, addresses, signed-in users), shuts a guest down that ignores ACPI, and freezes the
file systems for snapshots and backups.
"""

from __future__ import annotations

import base64
import io
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO

import libvirt
import libvirt_qemu

from vdi.hypervisor.errors import HypervisorError

if TYPE_CHECKING:
    from vdi.hypervisor.driver import Driver

WRITE_CHUNK = 48 * 1024  # bytes per guest-file-write: quick even under software emulation


@dataclass(frozen=True)
class GuestFacts:
    os: str = ""
    hostname: str = ""
    addresses: tuple[str, ...] = ()
    users: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"os": self.os, "hostname": self.hostname, "addresses": list(self.addresses),
                "users": list(self.users)}


@dataclass(frozen=True)
class ExecResult:
    exitcode: int
    stdout: str = ""
    stderr: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class GuestAgent:
    def __init__(self, driver: Driver) -> None:
        self.driver = driver

    def command(self, name: str, execute: str, arguments: dict[str, Any] | None = None,
                timeout: int = 5) -> Any:
        """Run one agent command; its ``return`` value. HypervisorError (retryable) when the
        agent does not answer (not started yet, or no agent in the guest)."""
        dom = self.driver._require(name)
        request: dict[str, Any] = {"execute": execute}
        if arguments:
            request["arguments"] = arguments
        try:
            answer = libvirt_qemu.qemuAgentCommand(dom, json.dumps(request), timeout, 0)
        except libvirt.libvirtError as exc:
            raise HypervisorError(f"guest agent of {name}: {exc.get_error_message()}",
                                  retryable=True) from None
        return json.loads(answer).get("return") if answer else None

    def ping(self, name: str) -> bool:
        try:
            self.command(name, "guest-ping", timeout=2)
        except HypervisorError:
            return False
        return True

    def facts(self, name: str) -> GuestFacts:
        os_info = self.command(name, "guest-get-osinfo") or {}
        host = self.command(name, "guest-get-host-name") or {}
        interfaces = self.command(name, "guest-network-get-interfaces") or []
        users = self.command(name, "guest-get-users") or []
        addresses = tuple(
            address["ip-address"] for interface in interfaces
            if interface.get("name") != "lo"
            for address in interface.get("ip-addresses", [])
            if not address["ip-address"].startswith("fe80"))
        return GuestFacts(os=str(os_info.get("pretty-name") or os_info.get("name") or ""),
                          hostname=str(host.get("host-name", "")), addresses=addresses,
                          users=tuple(sorted({str(u.get("user")) for u in users})))

    def run(self, name: str, path: str, args: list[str], timeout: float = 30) -> ExecResult:
        """Run a program in the guest and wait for it (its output captured)."""
        exitcode, out, err = self.run_bytes(name, path, args, timeout)
        return ExecResult(exitcode, out.decode(errors="replace"), err.decode(errors="replace"))

    def run_bytes(self, name: str, path: str, args: list[str], timeout: float = 30,
                  stdin: bytes | None = None) -> tuple[int, bytes, bytes]:
        """Run a program in the guest; its exit code and raw output (the agent keeps at most
        16 MiB of it), with ``stdin`` as its input."""
        arguments: dict[str, Any] = {"path": path, "arg": args, "capture-output": True}
        if stdin is not None:
            arguments["input-data"] = base64.b64encode(stdin).decode()
        started = self.command(name, "guest-exec", arguments)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.command(name, "guest-exec-status", {"pid": started["pid"]})
            if status.get("exited"):
                return (int(status.get("exitcode", -1)),
                        base64.b64decode(status.get("out-data", "")),
                        base64.b64decode(status.get("err-data", "")))
            time.sleep(0.2)
        raise HypervisorError(f"{path} in {name} did not finish within {timeout:.0f} s")

    def write_file(self, name: str, path: str, data: bytes) -> None:
        """Write ``data`` to ``path`` in the guest (a new file, or replaced)."""
        self.write_file_from(name, path, io.BytesIO(data))

    def write_file_from(self, name: str, path: str, source: BinaryIO) -> int:
        """Write what ``source`` holds to ``path`` in the guest (as the agent's user, root),
        48 KiB a command so that each stays well within the agent's timeout; the size."""
        handle = self.command(name, "guest-file-open", {"path": path, "mode": "w"})
        written = 0
        try:
            while chunk := source.read(WRITE_CHUNK):
                self.command(name, "guest-file-write",
                             {"handle": handle, "buf-b64": base64.b64encode(chunk).decode()})
                written += len(chunk)
        finally:
            self.command(name, "guest-file-close", {"handle": handle})
        return written

    def shutdown(self, name: str) -> None:
        """Power the guest off from inside (it sends no answer: the agent goes with it)."""
        dom = self.driver._require(name)
        try:
            dom.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_GUEST_AGENT)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() not in (libvirt.VIR_ERR_AGENT_UNRESPONSIVE,
                                            libvirt.VIR_ERR_OPERATION_INVALID):
                raise HypervisorError(f"agent shutdown of {name}: {exc.get_error_message()}",
                                      retryable=True) from None

    def freeze(self, name: str) -> int:
        """Freeze the guest's file systems (for a consistent snapshot); how many froze."""
        try:
            return int(self.driver._require(name).fsFreeze())
        except libvirt.libvirtError as exc:
            raise HypervisorError(f"freeze {name}: {exc.get_error_message()}",
                                  retryable=True) from None

    def thaw(self, name: str) -> int:
        try:
            return int(self.driver._require(name).fsThaw())
        except libvirt.libvirtError as exc:
            raise HypervisorError(f"thaw {name}: {exc.get_error_message()}",
                                  retryable=True) from None

"""A real SPICE server without a guest: QEMU with no machine, only its SPICE server (main,
inputs and the other channels that need no device), for tests and benchmarks of the proxy."""

from __future__ import annotations

import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class SpiceServer:
    port: int
    password: str


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def spice_server(password: str = "", timeout: float = 20.0) -> Iterator[SpiceServer]:
    password = password or secrets.token_hex(4)  # 8 characters, like a desktop's
    port = free_port()
    process = subprocess.Popen(
        ["qemu-system-x86_64", "-machine", "none", "-nodefaults", "-display", "none",
         "-object", f"secret,id=spicepw,data={password}",
         "-spice", f"port={port},addr=127.0.0.1,password-secret=spicepw"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    stderr = process.stderr.read() if process.stderr else b""
                    raise RuntimeError(f"QEMU's SPICE server did not start: {stderr!r}") from None
                time.sleep(0.05)
        yield SpiceServer(port, password)
    finally:
        process.kill()
        process.wait()

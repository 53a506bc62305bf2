"""A real VNC server with a screen and no guest: QEMU running SeaBIOS on a standard VGA, no
disk, no network; for tests and benchmarks of the console page."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from vdi.testing.processes import wait_for


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True
    except OSError:
        return False


@contextmanager
def vnc_screen(timeout: float = 20.0) -> Iterator[int]:
    """QEMU's VNC server on 127.0.0.1: its port, while the block runs."""
    port = next(port for port in range(5900, 6000) if not _listening(port))
    process = subprocess.Popen(
        ["qemu-system-x86_64", "-machine", "pc,accel=tcg", "-m", "64", "-nodefaults",
         "-vga", "std", "-display", "none", "-vnc", f"127.0.0.1:{port - 5900}",
         "-net", "none"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: _listening(port) or process.poll() is not None, timeout,
                 "QEMU's VNC server")
        if process.poll() is not None:
            raise RuntimeError(f"QEMU's VNC server did not start (exit {process.returncode})")
        yield port
    finally:
        process.kill()
        process.wait()

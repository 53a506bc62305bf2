"""A real VNC server with a screen and no guest: QEMU running SeaBIOS on a standard VGA, no
disk, no network; for tests and benchmarks of the console page."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from vdi.testing.processes import listening, wait_for


@contextmanager
def vnc_screen(password: str = "", timeout: float = 20.0) -> Iterator[int]:
    """QEMU's VNC server on 127.0.0.1: its port, while the block runs. With ``password``, it
    asks for VNC Authentication, as every portal desktop's screen does."""
    port = next(port for port in range(5900, 6000) if not listening(port))
    display = f"127.0.0.1:{port - 5900}"
    secret: list[str] = []
    if password:
        secret = ["-object", f"secret,id=vncpass,data={password}"]
        display += ",password-secret=vncpass"
    process = subprocess.Popen(
        ["qemu-system-x86_64", "-machine", "pc,accel=tcg", "-m", "64", "-nodefaults",
         "-vga", "std", "-display", "none", *secret, "-vnc", display, "-net", "none"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: listening(port) or process.poll() is not None, timeout,
                 "QEMU's VNC server")
        if process.poll() is not None:
            raise RuntimeError(f"QEMU's VNC server did not start (exit {process.returncode})")
        yield port
    finally:
        process.kill()
        process.wait()

"""The desktop plays a short test tone (the SPICE console's "Test sound"): a sine wave made
here, fed to ``aplay`` in the guest through its agent. The guest's sound card plays into
QEMU's SPICE audio, which sends it to the browser's sound channel."""

from __future__ import annotations

import io
import logging
import math
import struct
import wave

from vdi.choices import DesktopStatus
from vdi.hypervisor import HypervisorError
from vdi.models import Desktop
from vdi.worker.hosts import driver_for

log = logging.getLogger(__name__)
RATE = 48_000  # SPICE's Opus runs at 48 kHz: nothing to resample
PLAYER = "/usr/bin/aplay"
DEVICE = "default"


def tone_wav(seconds: float = 1.0, hertz: float = 440.0, level: float = 0.5) -> bytes:
    """A mono 16-bit WAV of a sine tone, faded in and out (no click)."""
    count = int(RATE * seconds)
    fade = RATE // 50
    samples = bytearray()
    for i in range(count):
        envelope = min(1.0, i / fade, (count - i) / fade)
        value = level * envelope * math.sin(2 * math.pi * hertz * i / RATE)
        samples += struct.pack("<h", int(value * 32767))
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(bytes(samples))
    return out.getvalue()


def play_test_tone(desktop_id: int) -> str:
    """Play the tone in the running desktop; says what happened (the task's result)."""
    desktop = Desktop.objects.select_related("host").filter(pk=desktop_id).first()
    if desktop is None or desktop.status != DesktopStatus.RUNNING:
        return "not running"
    try:
        exitcode, _out, err = driver_for(desktop.host).agent.run_bytes(
            desktop.domain_name, PLAYER, ["-q", "-D", DEVICE, "-"], timeout=20,
            stdin=tone_wav())
    except HypervisorError as exc:
        log.warning("no test tone in %s: %s", desktop, exc)
        return f"not played: {exc}"
    if exitcode != 0:
        log.warning("no test tone in %s: aplay exited with %s: %s", desktop, exitcode,
                    err.decode(errors="replace").strip()[:200])
        return f"not played: aplay exited with {exitcode}"
    return "played"

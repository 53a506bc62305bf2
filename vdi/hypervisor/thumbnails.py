"""A guest's screenshot (PNG from QEMU 7.1+, PPM from older ones) made into a small JPEG for
the dashboard. Pure: bytes in, bytes out, nothing of Django."""

from __future__ import annotations

import io

from PIL import Image, UnidentifiedImageError

from vdi.hypervisor.errors import HypervisorError
from vdi.hypervisor.specs import Screenshot

WIDTH, HEIGHT = 320, 240  # the most a thumbnail measures; the screen's proportions are kept
QUALITY = 70
FORMATS = ("PNG", "PPM")  # what libvirt's screenshot call gives; nothing else is opened


def thumbnail(shot: Screenshot, width: int = WIDTH, height: int = HEIGHT) -> bytes:
    """A JPEG of at most ``width`` x ``height`` showing the screen; HypervisorError when the
    bytes are not an image of a known kind."""
    try:
        with Image.open(io.BytesIO(shot.data), formats=FORMATS) as image:
            image.draft("RGB", (width, height))
            small = image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise HypervisorError(f"screenshot ({shot.mime or 'no type'}) is not an image: "
                              f"{exc}") from None
    small.thumbnail((width, height), Image.Resampling.BILINEAR, reducing_gap=2.0)
    out = io.BytesIO()
    small.save(out, "JPEG", quality=QUALITY, optimize=True)
    return out.getvalue()

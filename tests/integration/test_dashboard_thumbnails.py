"""The dashboard's thumbnail of a real guest's screen: beat's task, sent to the host's queue,
is taken by a real worker through QEMU's screendump (PNG from QEMU 7.2) and stored as a small
JPEG that shows the guest's text console."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from tests.support import wait_for, wait_status
from vdi import task_names, thumbnails
from vdi.choices import DesktopStatus
from vdi.images.tiny import READY_MARKER
from vdi.services import dispatch
from vdi.services.desktops import create_desktop

pytestmark = [pytest.mark.vm, pytest.mark.django_db(transaction=True)]


def test_the_worker_takes_a_thumbnail_of_a_real_guests_screen(worker, tiny_pool, owner):
    desktop = create_desktop(owner, tiny_pool, "127.0.0.1")
    wait_status(desktop, DesktopStatus.RUNNING)
    log = Path(desktop.serial_log_path)
    wait_for(lambda: log.exists() and READY_MARKER in log.read_text(errors="replace"), 120,
             "the guest's ready marker on its serial log")
    stored = thumbnails.path_for(desktop.domain_name)
    stored.unlink(missing_ok=True)

    dispatch.send(task_names.HOST_THUMBNAILS, (desktop.host_id,), desktop.host.queue)
    wait_for(stored.exists, 60, "the worker to store the thumbnail")

    with Image.open(io.BytesIO(stored.read_bytes())) as image:
        assert image.format == "JPEG"
        assert image.width <= 320 and image.height <= 240 and image.width >= 160
        spread = ImageStat.Stat(image.convert("L")).extrema[0]
        assert spread[1] - spread[0] > 60, "the console's text on its background, not a blank"
    assert oct(stored.stat().st_mode & 0o777) == "0o600"

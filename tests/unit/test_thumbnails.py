"""Thumbnails of desktops' screens: the driver's screenshot on libvirt's ``test:///default``
(a real libvirt stream; the test driver answers with a PNG), the small JPEG made of it, the
worker's pass over a host's running desktops, beat's fan-out to each host's queue, the live
event, and the console sessions' byte counts the dashboard shows beside them."""

from __future__ import annotations

import io
import os
import time

import pytest
from django.conf import settings
from PIL import Image

from tests.dashboard_fixtures import desktop, session
from tests.support import drain
from vdi import task_names, tasks, thumbnails
from vdi.choices import DesktopStatus
from vdi.hypervisor import HypervisorError, Screenshot, get_driver
from vdi.hypervisor.thumbnails import thumbnail
from vdi.live import events
from vdi.models import ConsoleSession, Host
from vdi.services.console import session_closed, session_seen
from vdi.worker import thumbnails as worker_thumbnails

TEST_URI = "test:///default"
TEST_DOMAIN = "test"  # the test driver's running domain


@pytest.fixture
def thumbs(settings, tmp_path):
    settings.THUMBNAIL_DIR = tmp_path / "thumbnails"
    return settings.THUMBNAIL_DIR


@pytest.fixture
def told(monkeypatch):
    sent: list[tuple[str, dict[str, object]]] = []
    monkeypatch.setattr(events, "tell", lambda group, message: sent.append((group, message)))
    return sent


def test_the_driver_takes_a_screenshot_through_a_stream():
    driver = get_driver(TEST_URI)
    shot = driver.screenshot(TEST_DOMAIN)
    assert shot is not None and shot.mime == "image/png"
    assert shot.data.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(shot.data)) as image:
        assert image.size[0] > 320
    assert driver.screenshot("vditest-no-such-domain") is None


def test_a_screenshot_bigger_than_allowed_is_an_error():
    with pytest.raises(HypervisorError, match="more than 1000 bytes"):
        get_driver(TEST_URI).screenshot(TEST_DOMAIN, max_bytes=1000)


def test_a_thumbnail_is_a_small_jpeg_in_the_screens_proportions():
    shot = get_driver(TEST_URI).screenshot(TEST_DOMAIN)
    assert shot is not None
    with Image.open(io.BytesIO(shot.data)) as image:
        width, height = image.size
    small = thumbnail(shot)
    assert small.startswith(b"\xff\xd8") and len(small) < len(shot.data)
    with Image.open(io.BytesIO(small)) as image:
        assert image.format == "JPEG"
        assert image.width <= 320 and image.height <= 240
        assert abs(image.width / image.height - width / height) < 0.05


def test_a_ppm_screenshot_is_read_too():
    picture = Image.new("RGB", (720, 400), (200, 30, 30))
    raw = io.BytesIO()
    picture.save(raw, "PPM")
    small = thumbnail(Screenshot("image/x-portable-pixmap", raw.getvalue()))
    with Image.open(io.BytesIO(small)) as image:
        assert image.size == (320, 178)
        pixel = image.getpixel((100, 100))
        assert isinstance(pixel, tuple)
        red, green = pixel[0], pixel[1]
        assert red > 150 and green < 80


def test_bytes_that_are_no_image_are_an_error():
    with pytest.raises(HypervisorError, match="not an image"):
        thumbnail(Screenshot("image/png", b"<html>"))


@pytest.fixture
def test_host(db):
    return Host.objects.create(name="libvirt-test", libvirt_uri=TEST_URI,
                               storage_dir="/nonexistent", domain_type="qemu")


def test_the_worker_takes_thumbnails_of_its_hosts_running_desktops(
        thumbs, told, test_host, pool, owner, django_capture_on_commit_callbacks):
    shown = desktop(pool, test_host, owner=owner, domain_name=TEST_DOMAIN)
    desktop(pool, test_host, status=DesktopStatus.STOPPED, domain_name="vditest-stopped")
    with django_capture_on_commit_callbacks(execute=True):  # the worker runs in autocommit
        counts = worker_thumbnails.take(test_host.pk)
    assert counts == {"taken": 1, "fresh": 0, "failed": 0, "removed": 0}
    stored = thumbnails.path_for(TEST_DOMAIN)
    assert stored.read_bytes().startswith(b"\xff\xd8")
    assert oct(stored.stat().st_mode & 0o777) == "0o600", "a screen is private"
    message = {"type": "live.changed", "kind": "thumbnail", "id": shown.pk}
    assert told == [(events.OPERATORS, message), (events.pool_group(pool.pk), message)], (
        "operators and the pool's operators hear of it; its owner's pages do not")

    again = worker_thumbnails.take(test_host.pk)  # a second delivery, or an overlapping run
    assert again["taken"] == 0 and again["fresh"] == 1


def test_a_domain_that_is_gone_is_skipped_and_the_rest_go_on(
        thumbs, told, test_host, pool, django_capture_on_commit_callbacks):
    desktop(pool, test_host, domain_name="vditest-not-on-the-host")
    shown = desktop(pool, test_host, domain_name=TEST_DOMAIN)
    with django_capture_on_commit_callbacks(execute=True):
        counts = worker_thumbnails.take(test_host.pk)
    assert counts["taken"] == 1 and thumbnails.path_for(TEST_DOMAIN).exists()
    assert [m["id"] for _, m in told] == [shown.pk, shown.pk]


def test_thumbnails_of_desktops_no_longer_running_are_removed(thumbs, told, test_host, pool):
    stopped = desktop(pool, test_host, status=DesktopStatus.STOPPED)
    running = desktop(pool, test_host, domain_name="vditest-running-elsewhere")
    old = time.time() - 10 * settings.THUMBNAIL_INTERVAL
    for name in (stopped.domain_name, running.domain_name, "vditest-deleted-long-ago"):
        os.utime(thumbnails.store(name, b"\xff\xd8"), (old, old))
    just_stopped = thumbnails.store("vditest-just-stopped", b"\xff\xd8")
    assert worker_thumbnails.prune(2 * settings.THUMBNAIL_INTERVAL) == 2
    assert [p.name for p in thumbnails.stored()] == [
        just_stopped.name, f"{running.domain_name}.jpg"]


def test_beat_asks_each_enabled_hosts_worker_on_its_queue(host, test_host, empty_queue):
    Host.objects.create(name="disabled", storage_dir="/x", enabled=False)
    assert settings.CELERY_BEAT_SCHEDULE["take-thumbnails"] == {
        "task": task_names.TAKE_THUMBNAILS, "schedule": settings.THUMBNAIL_INTERVAL}
    try:
        assert tasks.take_thumbnails() == 2
        assert drain(host.queue) == [{"task": task_names.HOST_THUMBNAILS, "args": [host.pk]}]
        assert drain(test_host.queue) == [
            {"task": task_names.HOST_THUMBNAILS, "args": [test_host.pk]}]
    finally:
        drain(test_host.queue)


def test_console_sessions_keep_their_byte_counts(running_desktop, owner):
    opened = session(running_desktop, owner)
    session_seen(opened.pk, (5000, 120))
    opened.refresh_from_db()
    assert (opened.bytes_to_browser, opened.bytes_to_guest) == (5000, 120)
    session_seen(opened.pk)  # a proxy that counts nothing (SPICE's gateway) keeps them
    session_closed(opened.pk, (9000, 200))
    closed = ConsoleSession.objects.get(pk=opened.pk)
    assert (closed.bytes_to_browser, closed.bytes_to_guest) == (9000, 200)
    assert closed.closed_at is not None
